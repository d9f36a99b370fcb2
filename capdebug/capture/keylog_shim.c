/* capdebug's key-log shim: preloaded (LD_PRELOAD) into one command by `capdebug run`, it makes a
 * dynamically linked OpenSSL (1.1.1 or later) write NSS key-log lines (RFC 9850) for every TLS
 * session the command makes, to the file named by CAPDEBUG_KEYLOG_SHIM_FILE.
 *
 * How: it defines SSL_CTX_new, SSL_CTX_new_ex and SSL_new; each calls the real function (found
 * with dlsym(RTLD_NEXT), or in an already loaded libssl when the program loaded it with
 * RTLD_LOCAL, as Python's _ssl module does) and installs our callback with
 * SSL_CTX_set_keylog_callback on the context. If the program installs a callback of its own
 * (SSL_CTX_set_keylog_callback is wrapped too), ours calls it first, and SSL_CTX_get_keylog_callback
 * still returns the program's: the program sees no difference.
 *
 * Safety: the file is opened O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW|O_CLOEXEC with mode 0600; each
 * line is ONE write() of the whole line and its newline, and O_APPEND makes each write land at
 * the end atomically, so threads and processes never interleave. errno is preserved. Without the
 * variable, or when OpenSSL is absent, nothing happens.
 *
 * No OpenSSL headers are needed: the few prototypes are declared here (opaque pointers), so
 * building needs only a C compiler and libc's headers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef void (*keylog_cb_t)(const SSL *, const char *);

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t open_once = PTHREAD_ONCE_INIT;
static int log_fd = -1;
static int defer_to_app = 0;

/* The program's own key-log callback per SSL_CTX, so that ours can chain to it. */
#define APP_CB_SLOTS 256
static struct { SSL_CTX *ctx; keylog_cb_t cb; } app_cbs[APP_CB_SLOTS];

static void *real_symbol(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        /* libssl loaded RTLD_LOCAL by a plugin (Python's _ssl): look in it by name. */
        static const char *const libs[] = {"libssl.so.3", "libssl.so.1.1", "libssl.so"};
        for (size_t i = 0; f == NULL && i < sizeof libs / sizeof libs[0]; i++) {
            void *h = dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD);
            if (h != NULL) {
                f = dlsym(h, name);
                dlclose(h);
            }
        }
    }
    return f;
}

static void open_log(void) {
    const char *path = getenv("CAPDEBUG_KEYLOG_SHIM_FILE");
    if (path == NULL || *path == '\0')
        return;
    log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    /* When SSLKEYLOGFILE names the same file, a program that logs by itself (curl, Python)
     * already writes these lines: do not write them twice. */
    const char *env = getenv("SSLKEYLOGFILE");
    defer_to_app = env != NULL && strcmp(env, path) == 0;
}

static keylog_cb_t app_callback(const SSL_CTX *ctx) {
    keylog_cb_t cb = NULL;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < APP_CB_SLOTS; i++)
        if (app_cbs[i].ctx == ctx) {
            cb = app_cbs[i].cb;
            break;
        }
    pthread_mutex_unlock(&table_lock);
    return cb;
}

/* Returns 0 when the table is full: the caller then leaves the program's callback in place
 * (that context's keys are not logged by us, but the program behaves exactly as without us). */
static int remember_app_callback(SSL_CTX *ctx, keylog_cb_t cb) {
    pthread_mutex_lock(&table_lock);
    int free_slot = -1;
    for (int i = 0; i < APP_CB_SLOTS; i++) {
        if (app_cbs[i].ctx == ctx) {
            app_cbs[i].cb = cb;
            if (cb == NULL)
                app_cbs[i].ctx = NULL;
            pthread_mutex_unlock(&table_lock);
            return 1;
        }
        if (free_slot < 0 && app_cbs[i].ctx == NULL)
            free_slot = i;
    }
    int ok = cb == NULL || free_slot >= 0;
    if (free_slot >= 0 && cb != NULL) {
        app_cbs[free_slot].ctx = ctx;
        app_cbs[free_slot].cb = cb;
    }
    pthread_mutex_unlock(&table_lock);
    return ok;
}

static void forget_ctx(const SSL_CTX *ctx) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < APP_CB_SLOTS; i++)
        if (app_cbs[i].ctx == ctx)
            app_cbs[i].ctx = NULL, app_cbs[i].cb = NULL;
    pthread_mutex_unlock(&table_lock);
}

static void shim_keylog(const SSL *ssl, const char *line) {
    int saved = errno;
    static SSL_CTX *(*get_ctx)(const SSL *);
    if (get_ctx == NULL)
        get_ctx = (SSL_CTX * (*)(const SSL *)) real_symbol("SSL_get_SSL_CTX");
    keylog_cb_t app = get_ctx != NULL ? app_callback(get_ctx(ssl)) : NULL;
    if (app != NULL)
        app(ssl, line);
    pthread_once(&open_once, open_log);
    if (log_fd >= 0 && !(app != NULL && defer_to_app)) {
        size_t n = strlen(line);
        char stack[512];
        char *buf = n + 1 <= sizeof stack ? stack : malloc(n + 1);
        if (buf != NULL) {
            memcpy(buf, line, n);
            buf[n] = '\n';
            /* One write per line: O_APPEND makes it atomic with respect to other writers. */
            ssize_t rc;
            do
                rc = write(log_fd, buf, n + 1);
            while (rc < 0 && errno == EINTR);
            if (buf != stack)
                free(buf);
        }
    }
    errno = saved;
}

static void set_real(SSL_CTX *ctx, keylog_cb_t cb) {
    static void (*set_cb)(SSL_CTX *, keylog_cb_t);
    if (ctx == NULL)
        return;
    if (set_cb == NULL)
        set_cb = (void (*)(SSL_CTX *, keylog_cb_t))real_symbol("SSL_CTX_set_keylog_callback");
    if (set_cb != NULL)
        set_cb(ctx, cb);
}

static void install(SSL_CTX *ctx) { set_real(ctx, shim_keylog); }

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static SSL_CTX *(*real)(const SSL_METHOD *);
    if (real == NULL)
        real = (SSL_CTX * (*)(const SSL_METHOD *)) real_symbol("SSL_CTX_new");
    if (real == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    SSL_CTX *ctx = real(method);
    forget_ctx(ctx); /* a new context at a freed one's address has no callback of its own */
    install(ctx);
    return ctx;
}

SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq, const SSL_METHOD *method) {
    static SSL_CTX *(*real)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    if (real == NULL)
        real = (SSL_CTX * (*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *))
            real_symbol("SSL_CTX_new_ex");
    if (real == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    SSL_CTX *ctx = real(libctx, propq, method);
    forget_ctx(ctx);
    install(ctx);
    return ctx;
}

SSL *SSL_new(SSL_CTX *ctx) {
    static SSL *(*real)(SSL_CTX *);
    if (real == NULL)
        real = (SSL * (*)(SSL_CTX *)) real_symbol("SSL_new");
    if (real == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    /* A context made before the shim could see it (none, normally) still gets the callback. */
    static keylog_cb_t (*get_cb)(const SSL_CTX *);
    if (get_cb == NULL)
        get_cb = (keylog_cb_t(*)(const SSL_CTX *))real_symbol("SSL_CTX_get_keylog_callback");
    if (ctx != NULL && get_cb != NULL && get_cb(ctx) != shim_keylog) {
        keylog_cb_t app = get_cb(ctx);
        if (app == NULL || remember_app_callback(ctx, app))
            install(ctx);
    }
    return real(ctx);
}

void SSL_CTX_set_keylog_callback(SSL_CTX *ctx, keylog_cb_t cb) {
    /* The program's own callback: remembered and chained, ours stays installed. */
    if (remember_app_callback(ctx, cb == shim_keylog ? NULL : cb))
        install(ctx);
    else
        set_real(ctx, cb);
}

keylog_cb_t SSL_CTX_get_keylog_callback(const SSL_CTX *ctx) {
    static keylog_cb_t (*real)(const SSL_CTX *);
    if (real == NULL)
        real = (keylog_cb_t(*)(const SSL_CTX *))real_symbol("SSL_CTX_get_keylog_callback");
    keylog_cb_t cb = real != NULL ? real(ctx) : NULL;
    /* The program sees its own callback (or none), never ours. */
    return cb == shim_keylog ? app_callback(ctx) : cb;
}
