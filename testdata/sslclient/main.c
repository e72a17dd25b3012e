/* sslclient: one HTTPS GET with OpenSSL, then exit; prints the response's
 * status code. Built by the e2e tests with OpenSSL linked statically into
 * the executable (libssl.a, libcrypto.a), as Node.js and many vendored C
 * and C++ programs carry it: no libssl.so is mapped, the SSL_* symbols are
 * the executable's own. Usage: sslclient HOST PORT PATH [wait]: with
 * "wait", it reads a line from stdin before it connects (a test lets the
 * agent attach first). */
#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "sslclient: %s\n", what);
	ERR_print_errors_fp(stderr);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return die("usage: sslclient HOST PORT PATH [wait]");
	if (argc == 5) {
		char line[64];
		if (!fgets(line, sizeof(line), stdin))
			return die("reading stdin");
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
		return die("resolving the address");
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		return die("connecting");
	freeaddrinfo(ai);
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		return die("SSL_CTX_new");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the tests' self-signed certificate */
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, argv[1]);
	if (SSL_connect(ssl) != 1)
		return die("TLS handshake");
	char req[1024];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n", argv[3], argv[1], argv[2]);
	if (n <= 0 || n >= (int)sizeof(req) || SSL_write(ssl, req, n) != n)
		return die("sending the request");
	char buf[256], rest[16384];
	size_t have = 0;
	for (;;) { /* the status line into buf, the rest read and dropped */
		int r = have < sizeof(buf) - 1 ? SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have))
					       : SSL_read(ssl, rest, sizeof(rest));
		if (r <= 0)
			break;
		if (have < sizeof(buf) - 1)
			have += (size_t)r;
	}
	buf[have] = 0;
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 && have != 0)
		return die("no status line");
	printf("%d\n", status);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
