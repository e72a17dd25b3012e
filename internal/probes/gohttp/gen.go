package gohttp

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type http_cfg -type gohttp_stat gohttp ../../../bpf/gohttp.bpf.c -- -I../../../bpf/headers -I../../../bpf
