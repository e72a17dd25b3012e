package sockio

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target amd64 -type event -type proc_cfg -type endpoints -type go_key -type span_ctx -type client_ctx -type h2_key -type h2_span -type h2_ids_event -type h2_name_event -type tcpopt_rx -type exe_key -type exec_sel_key sockio ../../../bpf/sockio.bpf.c -- -I../../../bpf/headers -I../../../bpf
