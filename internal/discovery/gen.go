package discovery

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type watch_event -type quiet_key procwatch ../../bpf/procwatch.bpf.c -- -I../../bpf/headers
