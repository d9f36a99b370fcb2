/* Under the shim, the program must see exactly the key-log callback it installed (or none):
 * prints "ok" when SSL_CTX_get_keylog_callback never reveals the shim's. */
#include <openssl/ssl.h>
#include <stdio.h>

static void mine(const SSL *ssl, const char *line) { (void)ssl; (void)line; }

int main(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_get_keylog_callback(ctx) != NULL) { puts("saw a callback it did not install"); return 1; }
    SSL_CTX_set_keylog_callback(ctx, mine);
    if (SSL_CTX_get_keylog_callback(ctx) != mine) { puts("its own callback is hidden"); return 1; }
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_set_keylog_callback(ctx, NULL);
    if (SSL_CTX_get_keylog_callback(ctx) != NULL) { puts("a cleared callback is still seen"); return 1; }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    puts("ok");
    return 0;
}
