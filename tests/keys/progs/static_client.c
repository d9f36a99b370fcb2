/* A minimal TLS client linked statically against the distribution's libssl.a: the doctor must
 * say that nothing outside it can get its keys. It only needs to link; it is not run. */
#include <openssl/ssl.h>
#include <stdio.h>

int main(int argc, char **argv) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    printf("%s %d\n", OpenSSL_version(OPENSSL_VERSION), argc > 1 ? SSL_connect(ssl) : 0);
    (void)argv;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return 0;
}
