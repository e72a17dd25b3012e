package gospawn

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type gospawn_stat gospawn ../../../bpf/gospawn.bpf.c -- -I../../../bpf/headers -I../../../bpf
