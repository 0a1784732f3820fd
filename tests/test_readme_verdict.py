"""The README's verdict quotes the committed second-edition study: every number in it appears in the study."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
STUDY = ROOT / "reports" / "claim-check-v2" / "study.md"
# figures of the study's own setup and the claim, written in words or units the study spells differently
ALLOWED = {"2", "3", "8", "32", "50", "500", "0", "1", "10", "250", "17", "2026-12-02", "3M", "1M", "300k", "30k"}


def verdict_numbers(readme: str) -> list[str]:
    text = readme.split("## The verdict (measured here)", 1)[1].split("**What moved since the first edition**", 1)[0]
    text = re.sub(r"\[[^\]]*\]\([^)]*\)", "", text)  # links: file names are no figures
    text = re.sub(r"`[^`]*`", "", text)  # code: settings and commands such as thresholds:10000,20,20
    return re.findall(r"\d{4}-\d\d-\d\d|\d+(?:,\d{3})*(?:\.\d+)?(?:[kM]\b)?", text)


def in_study(number: str, study: str) -> bool:
    """As a whole number: 1.4 is not found inside 31.4 or 1.45."""
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", study) is not None


def test_every_number_in_the_readmes_verdict_is_in_the_study():
    study = STUDY.read_text()
    numbers = verdict_numbers((ROOT / "README.md").read_text())
    assert len(numbers) > 40  # the verdict quotes the study, it does not merely link it
    missing = sorted({n for n in numbers if n not in ALLOWED and not in_study(n, study)})
    assert not missing, f"in the README's verdict but not in {STUDY.name}: {missing}"
