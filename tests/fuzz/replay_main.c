/* A main() for the fuzz harnesses without libFuzzer: runs LLVMFuzzerTestOneInput() once over
 * every file named on the command line and every file in the directories named there, so
 * `meson test --suite fuzz` replays the corpora (and the hostile fixtures) in any build. */
#include "fuzz.h"

#include <stdio.h>

static gboolean
run_file(const char *path, guint *count)
{
	g_autoptr(GError) error = NULL;
	g_autofree gchar *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &data, &len, &error)) {
		fprintf(stderr, "replay: %s\n", error->message);
		return FALSE;
	}
	/* A copy of exactly len bytes: the harness may not read the NUL glib appends. */
	g_autofree guint8 *copy = fuzz_copy((const uint8_t *)data, len);
	(void)LLVMFuzzerTestOneInput(copy, len);
	(*count)++;
	return TRUE;
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const char *const *)a, *(const char *const *)b);
}

static gboolean
run_dir(const char *dir, guint *count)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GDir) d = g_dir_open(dir, 0, &error);
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	const char *name;

	if (d == NULL) {
		fprintf(stderr, "replay: %s\n", error->message);
		return FALSE;
	}
	while ((name = g_dir_read_name(d)) != NULL) {
		if (name[0] == '.')
			continue;
		g_ptr_array_add(names, g_build_filename(dir, name, NULL));
	}
	g_ptr_array_sort(names, cmp_str); /* a stable order, for reproducible failures */
	for (guint i = 0; i < names->len; i++) {
		const char *path = g_ptr_array_index(names, i);
		if (g_file_test(path, G_FILE_TEST_IS_DIR))
			continue;
		fprintf(stderr, "replay: %s\n", path);
		if (!run_file(path, count))
			return FALSE;
	}
	return TRUE;
}

int
main(int argc, char **argv)
{
	guint count = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		gboolean ok = g_file_test(argv[i], G_FILE_TEST_IS_DIR) ? run_dir(argv[i], &count)
								       : run_file(argv[i], &count);
		if (!ok)
			return 1;
	}
	printf("replayed %u inputs\n", count);
	return 0;
}
