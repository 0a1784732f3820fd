// A strict JSON parser (RFC 8259) and writer for the Java server, JDK only.
//
// Values: Map<String,Object> (the last of repeated keys wins), List<Object>, String, Boolean, Json.NULL and
// Json.Num, which keeps the number's source text so that an id comes back byte for byte (1.50e3 stays 1.50e3).
// A lone UTF-16 surrogate escape (\ud800) becomes U+FFFD; nesting deeper than 512 is a parse error.

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

final class Json {
    static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };
    static final int MAX_DEPTH = 512;

    /** A number as written in the source. */
    static final class Num {
        final String text;

        Num(String text) {
            this.text = text;
        }

        /** True when written as an integer: digits only, with an optional minus (no fraction, no exponent). */
        boolean isInteger() {
            int i = text.startsWith("-") ? 1 : 0;
            if (i == text.length()) {
                return false;
            }
            for (; i < text.length(); i++) {
                if (text.charAt(i) < '0' || text.charAt(i) > '9') {
                    return false;
                }
            }
            return true;
        }
    }

    static final class ParseError extends Exception {
        private static final long serialVersionUID = 1L;

        ParseError() {
            super(null, null, false, false); // no stack trace: bad input is expected
        }
    }

    private final String s;
    private int pos;

    private Json(String s) {
        this.s = s;
    }

    /** Parse one JSON text from UTF-8 bytes (surrounding whitespace allowed, nothing else). */
    static Object parse(byte[] data, int off, int len) throws ParseError {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data, off, len))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new ParseError();
        }
        Json p = new Json(text);
        p.ws();
        Object v = p.value(0);
        p.ws();
        if (p.pos != text.length()) {
            throw new ParseError();
        }
        return v;
    }

    private void ws() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    private Object value(int depth) throws ParseError {
        if (pos >= s.length()) {
            throw new ParseError();
        }
        char c = s.charAt(pos);
        switch (c) {
            case '{':
                return object(depth + 1);
            case '[':
                return array(depth + 1);
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", NULL);
            default:
                if (c == '-' || (c >= '0' && c <= '9')) {
                    return number();
                }
                throw new ParseError();
        }
    }

    private Object literal(String word, Object v) throws ParseError {
        if (!s.startsWith(word, pos)) {
            throw new ParseError();
        }
        pos += word.length();
        return v;
    }

    private Map<String, Object> object(int depth) throws ParseError {
        if (depth > MAX_DEPTH) {
            throw new ParseError();
        }
        pos++; // {
        Map<String, Object> m = new LinkedHashMap<>();
        ws();
        if (pos < s.length() && s.charAt(pos) == '}') {
            pos++;
            return m;
        }
        while (true) {
            ws();
            if (pos >= s.length() || s.charAt(pos) != '"') {
                throw new ParseError();
            }
            String key = string();
            ws();
            if (pos >= s.length() || s.charAt(pos) != ':') {
                throw new ParseError();
            }
            pos++;
            ws();
            m.remove(key); // the last of repeated keys wins (as Python's json)
            m.put(key, value(depth));
            ws();
            if (pos >= s.length()) {
                throw new ParseError();
            }
            char c = s.charAt(pos++);
            if (c == '}') {
                return m;
            }
            if (c != ',') {
                throw new ParseError();
            }
        }
    }

    private List<Object> array(int depth) throws ParseError {
        if (depth > MAX_DEPTH) {
            throw new ParseError();
        }
        pos++; // [
        List<Object> a = new ArrayList<>();
        ws();
        if (pos < s.length() && s.charAt(pos) == ']') {
            pos++;
            return a;
        }
        while (true) {
            ws();
            a.add(value(depth));
            ws();
            if (pos >= s.length()) {
                throw new ParseError();
            }
            char c = s.charAt(pos++);
            if (c == ']') {
                return a;
            }
            if (c != ',') {
                throw new ParseError();
            }
        }
    }

    private Num number() throws ParseError {
        int start = pos;
        if (s.charAt(pos) == '-') {
            pos++;
        }
        if (pos >= s.length()) {
            throw new ParseError();
        }
        if (s.charAt(pos) == '0') {
            pos++;
        } else if (!digits()) {
            throw new ParseError();
        }
        if (pos < s.length() && s.charAt(pos) == '.') {
            pos++;
            if (!digits()) {
                throw new ParseError();
            }
        }
        if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
            pos++;
            if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                pos++;
            }
            if (!digits()) {
                throw new ParseError();
            }
        }
        return new Num(s.substring(start, pos));
    }

    private boolean digits() {
        int start = pos;
        while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
            pos++;
        }
        return pos > start;
    }

    private String string() throws ParseError {
        pos++; // "
        StringBuilder b = null;
        int run = pos;
        while (true) {
            if (pos >= s.length()) {
                throw new ParseError();
            }
            char c = s.charAt(pos);
            if (c == '"') {
                String out = b == null ? s.substring(run, pos) : b.append(s, run, pos).toString();
                pos++;
                return out;
            }
            if (c < 0x20) {
                throw new ParseError();
            }
            if (c != '\\') {
                pos++;
                continue;
            }
            if (b == null) {
                b = new StringBuilder();
            }
            b.append(s, run, pos);
            pos++;
            if (pos >= s.length()) {
                throw new ParseError();
            }
            char e = s.charAt(pos++);
            switch (e) {
                case '"': b.append('"'); break;
                case '\\': b.append('\\'); break;
                case '/': b.append('/'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'n': b.append('\n'); break;
                case 'r': b.append('\r'); break;
                case 't': b.append('\t'); break;
                case 'u': {
                    char u = hex4();
                    if (Character.isHighSurrogate(u) && s.startsWith("\\u", pos)) {
                        int save = pos;
                        pos += 2;
                        char low = hex4();
                        if (Character.isLowSurrogate(low)) {
                            b.append(u).append(low);
                        } else {
                            b.append('\uFFFD');
                            pos = save; // the next escape stands on its own
                        }
                    } else if (Character.isSurrogate(u)) {
                        b.append('\uFFFD'); // a lone surrogate has no place in UTF-8
                    } else {
                        b.append(u);
                    }
                    break;
                }
                default:
                    throw new ParseError();
            }
            run = pos;
        }
    }

    private char hex4() throws ParseError {
        if (pos + 4 > s.length()) {
            throw new ParseError();
        }
        int v = 0;
        for (int i = 0; i < 4; i++) {
            int d = Character.digit(s.charAt(pos + i), 16);
            if (d < 0) {
                throw new ParseError();
            }
            v = v * 16 + d;
        }
        pos += 4;
        return (char) v;
    }

    // ---- writing ----

    /** Append a JSON value (as parsed) to b. */
    static void write(StringBuilder b, Object v) {
        if (v instanceof String) {
            writeString(b, (String) v);
        } else if (v instanceof Num) {
            b.append(((Num) v).text);
        } else if (v instanceof Boolean || v == NULL) {
            b.append(v);
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                writeString(b, (String) e.getKey());
                b.append(':');
                write(b, e.getValue());
            }
            b.append('}');
        } else if (v instanceof List) {
            b.append('[');
            boolean first = true;
            for (Object x : (List<?>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, x);
            }
            b.append(']');
        } else {
            b.append("null");
        }
    }

    static void writeString(StringBuilder b, String str) {
        b.append('"');
        for (int i = 0; i < str.length(); i++) {
            char c = str.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                case '\b': b.append("\\b"); break;
                case '\f': b.append("\\f"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }

    static String quote(String str) {
        StringBuilder b = new StringBuilder(str.length() + 2);
        writeString(b, str);
        return b.toString();
    }
}
