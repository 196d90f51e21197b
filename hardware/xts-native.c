/*
 * xts-native.c - XTS-AES-128 in place on caller memory, for the "native"
 * crypto backend (hardware/xts-native.ts).
 *
 * node:crypto makes a cipher object and an output buffer per call; here a
 * key import makes one EVP_CIPHER_CTX for each direction, and every call
 * re-keys nothing: it sets the tweak (the data-unit number, IEEE 1619 5.1,
 * little-endian) and runs one EVP_CipherUpdate from the caller's typed array
 * into the caller's typed array (SharedArrayBuffer views included). The
 * OpenSSL used is the one inside node: node exports its EVP symbols and ships
 * the headers, so nothing is linked or downloaded.
 *
 * A key handle belongs to the thread that imported it (EVP contexts are not
 * shared): every worker CPU imports its own, as the engine already does.
 */
#include <node_api.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct xts_key {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

#define CHECK(env, call)                                                      \
	do {                                                                  \
		if ((call) != napi_ok) {                                      \
			napi_throw_error((env), NULL, "xts-native: " #call " failed"); \
			return NULL;                                          \
		}                                                             \
	} while (0)

static void key_free(napi_env env, void *data, void *hint)
{
	struct xts_key *k = data;

	(void)env;
	(void)hint;
	EVP_CIPHER_CTX_free(k->enc);
	EVP_CIPHER_CTX_free(k->dec);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

/* The bytes of a typed array argument: pointer and length. */
static int bytes_of(napi_env env, napi_value v, uint8_t **p, size_t *n, const char *what)
{
	napi_typedarray_type type;
	size_t len;
	void *data;
	napi_value ab;
	size_t off;
	bool is;

	if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
	    napi_get_typedarray_info(env, v, &type, &len, &data, &ab, &off) != napi_ok || type != napi_uint8_array) {
		napi_throw_type_error(env, NULL, what);
		return -1;
	}
	*p = data;
	*n = len;
	return 0;
}

/* importKey(key: Uint8Array(32)) -> handle */
static napi_value import_key(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	uint8_t *key;
	size_t n;
	struct xts_key *k;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || bytes_of(env, argv[0], &key, &n, "key: expected a Uint8Array") < 0)
		return NULL;
	if (n != 32) {
		napi_throw_range_error(env, NULL, "key: XTS-AES-128 needs 32 bytes");
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		napi_throw_error(env, NULL, "xts-native: out of memory");
		return NULL;
	}
	k->enc = EVP_CIPHER_CTX_new();
	k->dec = EVP_CIPHER_CTX_new();
	if (!k->enc || !k->dec || EVP_CipherInit_ex(k->enc, EVP_aes_128_xts(), NULL, key, NULL, 1) != 1 ||
	    EVP_CipherInit_ex(k->dec, EVP_aes_128_xts(), NULL, key, NULL, 0) != 1) {
		key_free(env, k, NULL);
		napi_throw_range_error(env, NULL, "key: OpenSSL refused the XTS key");
		return NULL;
	}
	CHECK(env, napi_create_external(env, k, key_free, NULL, &out));
	return out;
}

/*
 * crypt(handle, src, srcOff, dst, dstOff, len, unit, count, enc): count data
 * units of len bytes each, unit numbers unit, unit + len, ... (consecutive
 * frames: the tweak is the physical address). Offsets and lengths are
 * checked by the caller (backend.ts checkUnit) and again here for memory safety.
 */
static napi_value crypt(napi_env env, napi_callback_info info)
{
	size_t argc = 9;
	napi_value argv[9];
	struct xts_key *k;
	uint8_t *src, *dst, iv[16];
	size_t nsrc, ndst;
	int64_t soff, doff, len, count;
	double unit;
	bool enc;
	EVP_CIPHER_CTX *ctx;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 9) {
		napi_throw_type_error(env, NULL, "crypt: expected 9 arguments");
		return NULL;
	}
	CHECK(env, napi_get_value_external(env, argv[0], (void **)&k));
	if (bytes_of(env, argv[1], &src, &nsrc, "src: expected a Uint8Array") < 0 ||
	    bytes_of(env, argv[3], &dst, &ndst, "dst: expected a Uint8Array") < 0)
		return NULL;
	CHECK(env, napi_get_value_int64(env, argv[2], &soff));
	CHECK(env, napi_get_value_int64(env, argv[4], &doff));
	CHECK(env, napi_get_value_int64(env, argv[5], &len));
	CHECK(env, napi_get_value_double(env, argv[6], &unit));
	CHECK(env, napi_get_value_int64(env, argv[7], &count));
	CHECK(env, napi_get_value_bool(env, argv[8], &enc));
	if (len < 16 || len % 16 || count < 1 || soff < 0 || doff < 0 || unit < 0 || unit > 9007199254740991.0 ||
	    (uint64_t)soff + (uint64_t)len * (uint64_t)count > nsrc ||
	    (uint64_t)doff + (uint64_t)len * (uint64_t)count > ndst) {
		napi_throw_range_error(env, NULL, "crypt: data unit out of range");
		return NULL;
	}
	ctx = enc ? k->enc : k->dec;
	for (int64_t i = 0; i < count; i++) {
		uint64_t u = (uint64_t)unit + (uint64_t)(i * len);
		int outl;

		for (int b = 0; b < 8; b++)
			iv[b] = (uint8_t)(u >> (8 * b));
		memset(iv + 8, 0, 8);
		if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1 ||
		    EVP_CipherUpdate(ctx, dst + doff + i * len, &outl, src + soff + i * len, (int)len) != 1 || outl != len) {
			napi_throw_error(env, NULL, "xts-native: EVP_CipherUpdate failed");
			return NULL;
		}
	}
	return NULL;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "importKey", NULL, import_key, NULL, NULL, NULL, napi_default, NULL },
		{ "crypt", NULL, crypt, NULL, NULL, NULL, napi_default, NULL },
	};

	CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
