module gcbench/goserver

go 1.22
