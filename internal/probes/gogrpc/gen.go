package gogrpc

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type grpc_cfg -type gogrpc_stat gogrpc ../../../bpf/gogrpc.bpf.c -- -I../../../bpf/headers -I../../../bpf
