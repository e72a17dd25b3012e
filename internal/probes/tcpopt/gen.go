package tcpopt

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type tcpopt_stat -type tcpopt_tx -type tcpopt_rx -type tcpopt_inode tcpopt ../../../bpf/tcpopt.bpf.c -- -I../../../bpf/headers -I../../../bpf
