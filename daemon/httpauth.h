/* HTTP basic auth for the endpoint: a file of "user:hash" lines, the hashes crypt(3) makes
 * (yescrypt from `mkpasswd -m yescrypt`, sha512-crypt from `openssl passwd -6`), checked with
 * crypt_rn() (libcrypt's crypt_r()) and a constant-time compare. Good credentials are
 * remembered (by a keyed hash of user and password, never the password) for a while, so a
 * scrape every few seconds costs one hash computation, not one per request. Not
 * thread-safe: one thread checks. */
#pragma once

#include <glib.h>

#define HTTPAUTH_MAX_USERS 1000
#define HTTPAUTH_MAX_LINE 1024
#define HTTPAUTH_MAX_FILE (1024 * 1024)
#define HTTPAUTH_CACHE_MAX 64 /* remembered credentials; past it the oldest go */
#define HTTPAUTH_CACHE_S 600  /* ... for this long */

typedef struct HttpAuth HttpAuth;

/* The file's text (name stands for the file in errors): one "user:hash" per line; blank
 * lines and lines starting with '#' are skipped. A user name is 1-64 bytes of printable
 * ASCII without ':'; a hash is one crypt(3) makes with a strong method ($y$ yescrypt, $gy$,
 * $7$ scrypt, $2b$ bcrypt, $6$ sha512-crypt, $5$ sha256-crypt); MD5 and DES are refused.
 * A user named twice, an empty file and anything else are errors naming the line. */
HttpAuth *httpauth_new_from_data(const char *data, gsize len, const char *name,
				 GError **error) G_GNUC_WARN_UNUSED_RESULT;
HttpAuth *httpauth_new_from_file(const char *path, GError **error) G_GNUC_WARN_UNUSED_RESULT;
void httpauth_free(HttpAuth *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HttpAuth, httpauth_free)

guint httpauth_n_users(const HttpAuth *a);
/* TRUE when user and password match a line (user or password NULL: FALSE). An unknown user
 * costs one hash computation too, so the time does not tell which users exist. *cached
 * (may be NULL) says the answer came from the remembered good credentials. now_us: the
 * monotonic clock. */
gboolean httpauth_check(HttpAuth *a, const char *user, const char *password, gint64 now_us,
			gboolean *cached);
