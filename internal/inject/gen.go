package inject

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type inject_stat inject ../../bpf/inject.bpf.c -- -I../../bpf/headers -I../../bpf
