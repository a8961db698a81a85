/* The endpoint's password file and its check (httpauth.h): parsed line by line with every
 * length checked, verified with crypt_rn() (crypt_r() of libxcrypt) against the stored hash (which
 * carries its method, salt and cost), compared in constant time. */
#include "httpauth.h"

#include <crypt.h>
#include <string.h>

#define USER_MAX 64

typedef struct {
	char *user;
	char *hash;
} Entry;

struct HttpAuth {
	GArray *users;	   /* of Entry */
	GHmac *key;	   /* keyed hash of remembered credentials (a random key per run) */
	GHashTable *cache; /* hex digest -> expiry (monotonic us), as gint64 * */
	struct crypt_data *cd;
};

static const char *const strong_prefixes[] = {"$y$", "$gy$", "$7$", "$2b$", "$6$", "$5$", NULL};

static void
clear_entry(gpointer p)
{
	Entry *e = p;
	g_free(e->user);
	if (e->hash != NULL)
		explicit_bzero(e->hash, strlen(e->hash));
	g_free(e->hash);
}

void
httpauth_free(HttpAuth *a)
{
	if (a == NULL)
		return;
	if (a->users != NULL)
		g_array_unref(a->users);
	if (a->key != NULL)
		g_hmac_unref(a->key);
	if (a->cache != NULL)
		g_hash_table_destroy(a->cache);
	if (a->cd != NULL) {
		explicit_bzero(a->cd, sizeof *a->cd);
		g_free(a->cd);
	}
	g_free(a);
}

static gboolean
user_valid(const char *u, gsize len)
{
	if (len == 0 || len > USER_MAX)
		return FALSE;
	for (gsize i = 0; i < len; i++)
		if (u[i] < 0x21 || u[i] > 0x7e || u[i] == ':')
			return FALSE;
	return TRUE;
}

/* $id$ ... with only the characters crypt(3) writes: [./0-9A-Za-z$,=] */
static gboolean
hash_valid(const char *h, gsize len, char **why)
{
	gboolean strong = FALSE;

	for (guint i = 0; strong_prefixes[i] != NULL; i++)
		strong |= g_str_has_prefix(h, strong_prefixes[i]);
	if (!strong) {
		*why =
		    g_strdup("the hash is not one of yescrypt ($y$, mkpasswd -m yescrypt), "
			     "gost-yescrypt, scrypt, bcrypt ($2b$) or sha512-crypt ($6$, openssl "
			     "passwd -6) / sha256-crypt: MD5, DES and plain text are refused");
		return FALSE;
	}
	if (len < 10 || len > 512) {
		*why = g_strdup("the hash is too short or too long");
		return FALSE;
	}
	for (gsize i = 0; i < len; i++) {
		char c = h[i];
		if (!g_ascii_isalnum(c) && c != '.' && c != '/' && c != '$' && c != ',' &&
		    c != '=') {
			*why = g_strdup("the hash has a character crypt(3) does not write");
			return FALSE;
		}
	}
	return TRUE;
}

HttpAuth *
httpauth_new_from_data(const char *data, gsize len, const char *name, GError **error)
{
	g_autoptr(GArray) users = g_array_new(FALSE, TRUE, sizeof(Entry));
	gsize off = 0;
	guint line_no = 0;

	g_array_set_clear_func(users, clear_entry);
	if (len > HTTPAUTH_MAX_FILE) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: longer than %u bytes",
			    name, HTTPAUTH_MAX_FILE);
		return NULL;
	}
	while (off < len) {
		const char *line = data + off;
		const char *nl = memchr(line, '\n', len - off);
		gsize n = nl != NULL ? (gsize)(nl - line) : len - off;
		g_autofree char *why = NULL;

		off += nl != NULL ? n + 1 : n;
		line_no++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > HTTPAUTH_MAX_LINE) {
			why = g_strdup_printf("longer than %u bytes", HTTPAUTH_MAX_LINE);
		} else if (memchr(line, '\0', n) != NULL) {
			why = g_strdup("a NUL byte");
		} else {
			gsize s = 0;
			while (s < n && (line[s] == ' ' || line[s] == '\t'))
				s++;
			if (s == n || line[s] == '#')
				continue;
			gsize e = n;
			while (e > s && (line[e - 1] == ' ' || line[e - 1] == '\t'))
				e--;
			const char *colon = memchr(line + s, ':', e - s);
			if (colon == NULL) {
				why = g_strdup("not user:hash");
			} else {
				gsize ulen = (gsize)(colon - (line + s));
				const char *h = colon + 1;
				gsize hlen = e - (gsize)(h - line);
				if (!user_valid(line + s, ulen)) {
					why = g_strdup_printf(
					    "the user name is not 1 to %d printable "
					    "characters without ':' or blanks",
					    USER_MAX);
				} else {
					g_autofree char *hash = g_strndup(h, hlen);
					g_autofree char *user = g_strndup(line + s, ulen);
					if (hash_valid(hash, hlen, &why)) {
						for (guint i = 0; i < users->len && why == NULL;
						     i++)
							if (strcmp(
								g_array_index(users, Entry, i).user,
								user) == 0)
								why = g_strdup_printf(
								    "user '%s' is named twice",
								    user);
					}
					if (why == NULL && users->len >= HTTPAUTH_MAX_USERS)
						why = g_strdup_printf("more than %u users",
								      HTTPAUTH_MAX_USERS);
					if (why == NULL) {
						Entry en = {g_steal_pointer(&user),
							    g_steal_pointer(&hash)};
						g_array_append_val(users, en);
					}
				}
			}
		}
		if (why != NULL) {
			g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s:%u: %s", name,
				    line_no, why);
			return NULL;
		}
	}
	if (users->len == 0) {
		g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "%s: no user:hash line (make one with: printf '%%s:%%s\\n' admin "
			    "\"$(mkpasswd -m yescrypt)\")",
			    name);
		return NULL;
	}
	HttpAuth *a = g_new0(HttpAuth, 1);
	guint8 key[32];
	for (guint i = 0; i < sizeof key; i += 4) {
		guint32 r = g_random_int();
		memcpy(key + i, &r, 4);
	}
	a->users = g_steal_pointer(&users);
	a->key = g_hmac_new(G_CHECKSUM_SHA256, key, sizeof key);
	explicit_bzero(key, sizeof key);
	a->cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	a->cd = g_new0(struct crypt_data, 1);
	return a;
}

HttpAuth *
httpauth_new_from_file(const char *path, GError **error)
{
	g_autofree char *text = NULL;
	gsize len;

	if (!g_file_get_contents(path, &text, &len, error))
		return NULL;
	HttpAuth *a = httpauth_new_from_data(text, len, path, error);
	explicit_bzero(text, len);
	return a;
}

guint
httpauth_n_users(const HttpAuth *a)
{
	return a->users->len;
}

/* Equal strings, in a time that depends on their lengths only. */
static gboolean
equal_ct(const char *a, const char *b)
{
	gsize la = strlen(a), lb = strlen(b);
	guchar diff = la != lb;

	for (gsize i = 0; i < la && i < lb; i++)
		diff |= (guchar)a[i] ^ (guchar)b[i];
	return diff == 0;
}

static char *
cache_key(HttpAuth *a, const char *user, const char *password)
{
	g_autoptr(GHmac) h = g_hmac_copy(a->key);

	g_hmac_update(h, (const guchar *)user, (gssize)strlen(user) + 1);
	g_hmac_update(h, (const guchar *)password, (gssize)strlen(password));
	return g_strdup(g_hmac_get_string(h));
}

static void
cache_put(HttpAuth *a, char *key, gint64 now_us)
{
	if (g_hash_table_size(a->cache) >= HTTPAUTH_CACHE_MAX) {
		/* drop the expired, and if that frees nothing, everything: a rare event */
		GHashTableIter it;
		gpointer k, v;
		g_hash_table_iter_init(&it, a->cache);
		while (g_hash_table_iter_next(&it, &k, &v))
			if (*(gint64 *)v <= now_us)
				g_hash_table_iter_remove(&it);
		if (g_hash_table_size(a->cache) >= HTTPAUTH_CACHE_MAX)
			g_hash_table_remove_all(a->cache);
	}
	gint64 *exp = g_new(gint64, 1);
	*exp = now_us + (gint64)HTTPAUTH_CACHE_S * G_USEC_PER_SEC;
	g_hash_table_replace(a->cache, key, exp);
}

gboolean
httpauth_check(HttpAuth *a, const char *user, const char *password, gint64 now_us, gboolean *cached)
{
	const Entry *e = NULL;

	if (cached != NULL)
		*cached = FALSE;
	if (a == NULL || user == NULL || password == NULL)
		return FALSE;
	g_autofree char *key = cache_key(a, user, password);
	const gint64 *exp = g_hash_table_lookup(a->cache, key);
	if (exp != NULL && *exp > now_us) {
		if (cached != NULL)
			*cached = TRUE;
		return TRUE;
	}
	for (guint i = 0; i < a->users->len && e == NULL; i++)
		if (strcmp(g_array_index(a->users, Entry, i).user, user) == 0)
			e = &g_array_index(a->users, Entry, i);
	/* an unknown user is hashed like the first user, and fails */
	const char *hash = e != NULL ? e->hash : g_array_index(a->users, Entry, 0).hash;
	struct crypt_data *cd = a->cd;
	g_assert(cd != NULL);
	/* crypt_rn() is crypt_r() that says failure with NULL rather than a "*0" token; and
	 * GCC 12's AddressSanitizer intercepts crypt_r() with a NULL pointer under libxcrypt
	 * (the ASan build crashed), while crypt_rn() it leaves alone */
	const char *got = crypt_rn(password, hash, cd, (int)sizeof *cd);
	gboolean ok = e != NULL && got != NULL && got[0] != '*' && equal_ct(got, hash);
	explicit_bzero(cd, sizeof *cd);
	if (ok)
		cache_put(a, g_steal_pointer(&key), now_us);
	return ok;
}
