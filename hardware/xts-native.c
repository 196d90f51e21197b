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
 *
 * On x86-64 CPUs with VAES, VPCLMULQDQ and AVX-512 (Intel Ice Lake and
 * later, AMD Zen 4), the data units are instead encrypted here, four AES
 * blocks per instruction: the OpenSSL inside node 20 (3.0) has no VAES path
 * for XTS, so its aesni_xts_encrypt does one block per instruction (OpenSSL
 * took an AVX-512 XTS in 2025, openssl/openssl pull request 26410, about 2x
 * at 8 KiB on Sapphire Rapids by its figures). Such keys get no EVP
 * contexts, which cost microseconds per key (and some workloads program a
 * key every round); the one key OpenSSL's XTS refuses, equal halves, is
 * refused here too. importKey(key, "evp") keeps a key on OpenSSL, which the
 * tests use to check both paths against each other and against the IEEE
 * 1619 vectors.
 *
 * XTS as IEEE 1619-2007 defines it for whole blocks: T = AES-enc(K2, i),
 * C_j = AES(K1, P_j ^ T_j) ^ T_j, T_{j+1} = T_j * x in GF(2^128) modulo
 * x^128 + x^7 + x^2 + x + 1, the 128-bit tweak read little-endian. Data
 * units here are whole blocks (len % 16 == 0), so no ciphertext stealing.
 */
#define _GNU_SOURCE /* O_CLOEXEC, pread, sched_getcpu, sched_setaffinity */
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sched.h>
#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define XTS_VAES 1
#include <immintrin.h>
#endif

struct xts_key {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
#ifdef XTS_VAES
	int vaes;		/* this key runs on the VAES path */
	__m128i ek[11];		/* K1, encryption round keys */
	__m128i dk[11];		/* K1, decryption round keys (equivalent inverse cipher) */
	__m128i tk[11];		/* K2, encryption round keys (tweaks) */
#endif
};

#ifdef XTS_VAES
#define AES_TARGET __attribute__((target("aes,sse4.1")))
#define VAES_TARGET __attribute__((target("aes,sse4.1,avx2,avx512f,vaes,vpclmulqdq")))

/* The CPU has what xts_unit_vaes needs (libgcc's CPU model, set up when the addon loads). */
static int have_vaes(void)
{
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vaes") && __builtin_cpu_supports("vpclmulqdq") &&
	       __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
}

/* One AES-128 key-expansion step (FIPS 197 5.2) from the previous round key
 * and AESKEYGENASSIST's SubWord(RotWord(w3)) ^ Rcon. */
AES_TARGET static __m128i expand_step(__m128i k, __m128i g)
{
	g = _mm_shuffle_epi32(g, 0xff);
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	return _mm_xor_si128(k, g);
}

#define EXPAND(rk, i, rcon) ((rk)[i] = expand_step((rk)[(i) - 1], _mm_aeskeygenassist_si128((rk)[(i) - 1], (rcon))))

AES_TARGET static void expand128(const uint8_t *key, __m128i *rk)
{
	rk[0] = _mm_loadu_si128((const __m128i *)key);
	EXPAND(rk, 1, 0x01);
	EXPAND(rk, 2, 0x02);
	EXPAND(rk, 3, 0x04);
	EXPAND(rk, 4, 0x08);
	EXPAND(rk, 5, 0x10);
	EXPAND(rk, 6, 0x20);
	EXPAND(rk, 7, 0x40);
	EXPAND(rk, 8, 0x80);
	EXPAND(rk, 9, 0x1b);
	EXPAND(rk, 10, 0x36);
}

/* Round keys for AESDEC: reversed, InvMixColumns on the inner ones (FIPS 197 5.3.5). */
AES_TARGET static void inverse128(const __m128i *ek, __m128i *dk)
{
	dk[0] = ek[10];
	for (int i = 1; i < 10; i++)
		dk[i] = _mm_aesimc_si128(ek[10 - i]);
	dk[10] = ek[0];
}

/* T * x, the tweak as two little-endian 64-bit halves. */
static inline void mul_x(uint64_t *lo, uint64_t *hi)
{
	uint64_t c = *hi >> 63;

	*hi = (*hi << 1) | (*lo >> 63);
	*lo = (*lo << 1) ^ (0x87 & (0 - c));
}

/* Each 128-bit lane times x^4: shift left by 4, fold the 4 bits shifted out
 * of the top back in as their carry-less product with 0x87. */
VAES_TARGET static inline __m512i mul_x4(__m512i t)
{
	const __m512i poly = _mm512_set1_epi64(0x87);
	__m512i out = _mm512_srli_epi64(t, 60);

	out = _mm512_shuffle_epi32(out, _MM_PERM_BADC);	/* q0 <- hi >> 60, q1 <- lo >> 60 */
	out = _mm512_mask_blend_epi64(0xaa, _mm512_clmulepi64_epi128(out, poly, 0x00), out);
	return _mm512_xor_si512(_mm512_slli_epi64(t, 4), out);
}

#define ROUNDS4(op, x0, x1, x2, x3, r)                                             	do {                                                                       		for (int j_ = 1; j_ < 10; j_++) {                                  			x0 = op(x0, r[j_]);                                        			x1 = op(x1, r[j_]);                                        			x2 = op(x2, r[j_]);                                        			x3 = op(x3, r[j_]);                                        		}                                                                  	} while (0)

/* One data unit of len bytes (a multiple of 16) with tweak number unit. */
VAES_TARGET static void xts_unit_vaes(const struct xts_key *k, const uint8_t *src, uint8_t *dst, size_t len, uint64_t unit, int enc)
{
	const __m128i *rk = enc ? k->ek : k->dk;
	__m512i r[11], tw, x0, x1, x2, x3, t0, t1, t2, t3;
	__m128i t, x;
	uint64_t lo, hi, l[4], h[4];
	size_t nb = len / 16, i = 0;

	t = _mm_xor_si128(_mm_set_epi64x(0, (long long)unit), k->tk[0]);
	for (int j = 1; j < 10; j++)
		t = _mm_aesenc_si128(t, k->tk[j]);
	t = _mm_aesenclast_si128(t, k->tk[10]);
	lo = (uint64_t)_mm_cvtsi128_si64(t);
	hi = (uint64_t)_mm_extract_epi64(t, 1);
	if (nb >= 4) {
		for (int q = 0; q < 4; q++) {
			l[q] = lo;
			h[q] = hi;
			mul_x(&lo, &hi);
		}
		tw = _mm512_set_epi64((long long)h[3], (long long)l[3], (long long)h[2], (long long)l[2], (long long)h[1],
				      (long long)l[1], (long long)h[0], (long long)l[0]);
		for (int j = 0; j < 11; j++)
			r[j] = _mm512_broadcast_i32x4(rk[j]);
		for (; i + 16 <= nb; i += 16) {
			t0 = tw;
			t1 = mul_x4(t0);
			t2 = mul_x4(t1);
			t3 = mul_x4(t2);
			tw = mul_x4(t3);
			x0 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(src + 16 * i), t0, r[0], 0x96);
			x1 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(src + 16 * i + 64), t1, r[0], 0x96);
			x2 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(src + 16 * i + 128), t2, r[0], 0x96);
			x3 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(src + 16 * i + 192), t3, r[0], 0x96);
			if (enc) {
				ROUNDS4(_mm512_aesenc_epi128, x0, x1, x2, x3, r);
				x0 = _mm512_aesenclast_epi128(x0, r[10]);
				x1 = _mm512_aesenclast_epi128(x1, r[10]);
				x2 = _mm512_aesenclast_epi128(x2, r[10]);
				x3 = _mm512_aesenclast_epi128(x3, r[10]);
			} else {
				ROUNDS4(_mm512_aesdec_epi128, x0, x1, x2, x3, r);
				x0 = _mm512_aesdeclast_epi128(x0, r[10]);
				x1 = _mm512_aesdeclast_epi128(x1, r[10]);
				x2 = _mm512_aesdeclast_epi128(x2, r[10]);
				x3 = _mm512_aesdeclast_epi128(x3, r[10]);
			}
			_mm512_storeu_si512(dst + 16 * i, _mm512_xor_si512(x0, t0));
			_mm512_storeu_si512(dst + 16 * i + 64, _mm512_xor_si512(x1, t1));
			_mm512_storeu_si512(dst + 16 * i + 128, _mm512_xor_si512(x2, t2));
			_mm512_storeu_si512(dst + 16 * i + 192, _mm512_xor_si512(x3, t3));
		}
		for (; i + 4 <= nb; i += 4) {
			x0 = _mm512_ternarylogic_epi64(_mm512_loadu_si512(src + 16 * i), tw, r[0], 0x96);
			for (int j = 1; j < 10; j++)
				x0 = enc ? _mm512_aesenc_epi128(x0, r[j]) : _mm512_aesdec_epi128(x0, r[j]);
			x0 = enc ? _mm512_aesenclast_epi128(x0, r[10]) : _mm512_aesdeclast_epi128(x0, r[10]);
			_mm512_storeu_si512(dst + 16 * i, _mm512_xor_si512(x0, tw));
			tw = mul_x4(tw);
		}
		t = _mm512_castsi512_si128(tw);
		lo = (uint64_t)_mm_cvtsi128_si64(t);
		hi = (uint64_t)_mm_extract_epi64(t, 1);
	}
	for (; i < nb; i++) {
		t = _mm_set_epi64x((long long)hi, (long long)lo);
		x = _mm_xor_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + 16 * i)), t), rk[0]);
		for (int j = 1; j < 10; j++)
			x = enc ? _mm_aesenc_si128(x, rk[j]) : _mm_aesdec_si128(x, rk[j]);
		x = enc ? _mm_aesenclast_si128(x, rk[10]) : _mm_aesdeclast_si128(x, rk[10]);
		_mm_storeu_si128((__m128i *)(dst + 16 * i), _mm_xor_si128(x, t));
		mul_x(&lo, &hi);
	}
}
#endif

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

	/* (napi_invalid_arg for anything but a typed array) */
	if (napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
		napi_throw_type_error(env, NULL, what);
		return -1;
	}
	*p = data;
	*n = len;
	return 0;
}

/*
 * Load key into k, on the path k is for (k->vaes, or its EVP contexts):
 * 0, or -1 for a key OpenSSL's XTS refuses (aes_xts_check_keys: both
 * halves equal), refused on either path before k is touched.
 */
static int key_load(struct xts_key *k, const uint8_t *key)
{
	if (CRYPTO_memcmp(key, key + 16, 16) == 0)
		return -1;
#ifdef XTS_VAES
	if (k->vaes) {
		expand128(key, k->ek);
		inverse128(k->ek, k->dk);
		expand128(key + 16, k->tk);
		return 0;
	}
#endif
	return EVP_CipherInit_ex(k->enc, EVP_aes_128_xts(), NULL, key, NULL, 1) == 1 &&
		       EVP_CipherInit_ex(k->dec, EVP_aes_128_xts(), NULL, key, NULL, 0) == 1
		       ? 0
		       : -1;
}

/* importKey(key: Uint8Array(32), impl?: "evp") -> handle */
static napi_value import_key(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out;
	uint8_t *key;
	size_t n;
	struct xts_key *k;
	void *mem;
	int evp_only = 0, vaes = 0;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || bytes_of(env, argv[0], &key, &n, "key: expected a Uint8Array") < 0)
		return NULL;
	if (n != 32) {
		napi_throw_range_error(env, NULL, "key: XTS-AES-128 needs 32 bytes");
		return NULL;
	}
	if (argc >= 2) {
		napi_valuetype t;
		char name[8];
		size_t nl;

		CHECK(env, napi_typeof(env, argv[1], &t));
		if (t != napi_undefined) {
			if (t != napi_string || napi_get_value_string_utf8(env, argv[1], name, sizeof(name), &nl) != napi_ok ||
			    strcmp(name, "evp") != 0) {
				napi_throw_type_error(env, NULL, "impl: expected \"evp\" or undefined");
				return NULL;
			}
			evp_only = 1;
		}
	}
	if (posix_memalign(&mem, 64, sizeof(*k)) != 0) {
		napi_throw_error(env, NULL, "xts-native: out of memory");
		return NULL;
	}
	k = memset(mem, 0, sizeof(*k));
#ifdef XTS_VAES
	if (!evp_only && have_vaes())
		k->vaes = vaes = 1;
#else
	(void)evp_only;
#endif
	/* OpenSSL's contexts, for keys that run on it: making them costs microseconds per key */
	if (!vaes && (!(k->enc = EVP_CIPHER_CTX_new()) || !(k->dec = EVP_CIPHER_CTX_new()))) {
		key_free(env, k, NULL);
		napi_throw_error(env, NULL, "xts-native: out of memory");
		return NULL;
	}
	if (key_load(k, key) < 0) {
		key_free(env, k, NULL);
		napi_throw_range_error(env, NULL, "key: OpenSSL refused the XTS key");
		return NULL;
	}
	CHECK(env, napi_create_external(env, k, key_free, NULL, &out));
	return out;
}

/*
 * rekey(handle, key: Uint8Array(32)): the handle's key replaced in place, on
 * the path it was imported for (VAES or EVP). A KeyID slot that PCONFIG
 * reprograms keeps its one handle: an import per program made a napi
 * external each time, whose weak handle V8 processes at every young-
 * generation GC that finds it dead (hardware/engine.ts says what that cost).
 * A refused key (equal halves) leaves the handle as it was.
 */
static napi_value rekey(napi_env env, napi_callback_info info)
{
	size_t argc = 2, n;
	napi_value argv[2];
	uint8_t *key;
	struct xts_key *k;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 2 || napi_get_value_external(env, argv[0], (void **)&k) != napi_ok) {
		napi_throw_type_error(env, NULL, "rekey: expected (handle, key)");
		return NULL;
	}
	if (bytes_of(env, argv[1], &key, &n, "key: expected a Uint8Array") < 0)
		return NULL;
	if (n != 32) {
		napi_throw_range_error(env, NULL, "key: XTS-AES-128 needs 32 bytes");
		return NULL;
	}
	if (key_load(k, key) < 0)
		napi_throw_range_error(env, NULL, "key: OpenSSL refused the XTS key");
	return NULL;
}

/*
 * The numbers of a crypt call (srcOff, dstOff, len, unit, count, enc) come
 * in a Float64Array the caller registers once per thread (setRegs), not as
 * arguments: reading six numbers through N-API cost about 70 ns of a call
 * that encrypts 4 KiB in about 350 ns. Each thread (napi_env) has its own.
 */
enum { R_SOFF, R_DOFF, R_LEN, R_UNIT, R_COUNT, R_ENC, R_SRC, R_DST, NR_REGS };

/*
 * Bound buffers: Uint8Arrays on a SharedArrayBuffer that a thread named
 * once (bind), so that cryptBound, copyBound and compareBound find their
 * bytes by a number in the registers (R_SRC, R_DST) instead of asking N-API
 * for two typed arrays' storage: that asking cost about 58 ns a call here,
 * against about 25 ns for the rest of a call (a test addon's empty function
 * with a handle, and with a handle and two Uint8Arrays: 25 and 83 ns; a
 * 4 KiB XTS unit is about 350). Only a SharedArrayBuffer's views are taken:
 * its memory never moves and cannot be detached (an ArrayBuffer can be
 * transferred away), and the reference held here keeps it alive until it is
 * let go (unbind, unbindAll). The length is the view's at bind (a growable
 * SharedArrayBuffer only grows). An id is slot + NR_BOUND * generation, so
 * an id kept after its buffer was let go names nothing rather than the
 * slot's next buffer.
 */
#define NR_BOUND 256
#define BOUND_GENS (1u << 20)

struct bound {
	napi_ref ref;	/* NULL: the slot is free */
	uint8_t *p;
	size_t n;
	uint32_t gen;
};

struct xts_env {
	napi_ref ref;	/* keeps the registers' buffer alive */
	double *regs;
	struct bound bound[NR_BOUND];
};

static void env_free(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	free(data);
}

/* setRegs(regs: Float64Array of at least 8, on an ArrayBuffer: its memory does not move) */
static napi_value set_regs(napi_env env, napi_callback_info info)
{
	size_t argc = 1, n;
	napi_value argv[1];
	napi_typedarray_type type;
	struct xts_env *e;
	void *data;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &n, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
	    n < NR_REGS) {
		napi_throw_type_error(env, NULL, "regs: expected a Float64Array of at least 8");
		return NULL;
	}
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	if (e->ref != NULL)
		CHECK(env, napi_delete_reference(env, e->ref));
	e->ref = NULL;
	CHECK(env, napi_create_reference(env, argv[0], 1, &e->ref));
	e->regs = data;
	return NULL;
}

/* A register holding a whole number in [0, 2^53): into *out, else false. */
static bool reg_u53(double x, uint64_t *out)
{
	if (!(x >= 0 && x <= 9007199254740991.0) || x != (double)(uint64_t)x)
		return false;
	*out = (uint64_t)x;
	return true;
}

/*
 * The registers' data units of src (nsrc bytes) into dst (ndst): checked
 * against both lengths, then encrypted or decrypted. An exception is pending
 * when a check or OpenSSL failed.
 */
static void crypt_regs(napi_env env, struct xts_env *e, struct xts_key *k, uint8_t *src, size_t nsrc, uint8_t *dst, size_t ndst)
{
	uint8_t iv[16];
	uint64_t soff, doff, len, unit, count;
	bool enc;
	EVP_CIPHER_CTX *ctx;

	enc = e->regs[R_ENC] != 0;
	if (!reg_u53(e->regs[R_SOFF], &soff) || !reg_u53(e->regs[R_DOFF], &doff) || !reg_u53(e->regs[R_LEN], &len) ||
	    !reg_u53(e->regs[R_UNIT], &unit) || !reg_u53(e->regs[R_COUNT], &count) || len < 16 || len % 16 || count < 1 ||
	    len > nsrc || len > ndst || count > nsrc / len || soff > nsrc - len * count || doff > ndst - len * count ||
	    len > INT_MAX) {
		napi_throw_range_error(env, NULL, "crypt: data unit out of range");
		return;
	}
#ifdef XTS_VAES
	if (k->vaes) {
		for (uint64_t i = 0; i < count; i++)
			xts_unit_vaes(k, src + soff + i * len, dst + doff + i * len, (size_t)len, unit + i * len, enc);
		return;
	}
#endif
	ctx = enc ? k->enc : k->dec;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t u = unit + i * len;
		int outl;

		for (int b = 0; b < 8; b++)
			iv[b] = (uint8_t)(u >> (8 * b));
		memset(iv + 8, 0, 8);
		if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1 ||
		    EVP_CipherUpdate(ctx, dst + doff + i * len, &outl, src + soff + i * len, (int)len) != 1 || (uint64_t)outl != len) {
			napi_throw_error(env, NULL, "xts-native: EVP_CipherUpdate failed");
			return;
		}
	}
}

/*
 * The start of every call that reads the call registers (crypt, copy and
 * the bound calls): this thread's env, and its first `want` arguments into
 * argv (none read when want is 0: the bound calls take nothing else, and
 * are on every page's path). NULL with an exception pending where fewer
 * arguments came or setRegs was not called, `usage` then saying so.
 */
static struct xts_env *regs_call(napi_env env, napi_callback_info info, size_t want, napi_value *argv, const char *usage)
{
	size_t argc = want;
	struct xts_env *e;

	CHECK(env, want > 0 ? napi_get_cb_info(env, info, &argc, argv, NULL, NULL) : napi_ok);
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	if (argc < want || e->regs == NULL) {
		napi_throw_type_error(env, NULL, usage);
		return NULL;
	}
	return e;
}

/*
 * crypt(handle, src, dst), the registers holding srcOff, dstOff, len, unit,
 * count, enc: count data units of len bytes each, unit numbers unit,
 * unit + len, ... (consecutive frames: the tweak is the physical address).
 * Offsets and lengths are checked by the caller (backend.ts checkUnit) and
 * again here for memory safety.
 * (crypt_units, not crypt: <unistd.h> declares crypt(3).)
 */
static napi_value crypt_units(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	struct xts_key *k;
	struct xts_env *e = regs_call(env, info, 3, argv, "crypt: expected (handle, src, dst) after setRegs");
	uint8_t *src, *dst;
	size_t nsrc, ndst;

	if (e == NULL)
		return NULL;
	CHECK(env, napi_get_value_external(env, argv[0], (void **)&k));
	if (bytes_of(env, argv[1], &src, &nsrc, "crypt: src and dst: expected Uint8Arrays") < 0 ||
	    bytes_of(env, argv[2], &dst, &ndst, "crypt: src and dst: expected Uint8Arrays") < 0)
		return NULL;
	crypt_regs(env, e, k, src, nsrc, dst, ndst);
	return NULL;
}

/*
 * The registers' byte range (srcOff, dstOff, len) into *soff, *doff, *len:
 * true when len bytes at srcOff fit nsrc and at dstOff fit ndst (copy and
 * compare), else false.
 */
static bool range_regs(struct xts_env *e, size_t nsrc, size_t ndst, uint64_t *soff, uint64_t *doff, uint64_t *len)
{
	return reg_u53(e->regs[R_SOFF], soff) && reg_u53(e->regs[R_DOFF], doff) && reg_u53(e->regs[R_LEN], len) &&
	       *len <= nsrc && *len <= ndst && *soff <= nsrc - *len && *doff <= ndst - *len;
}

/* The registers' range of src (nsrc bytes) into dst (ndst), memmove; a RangeError pending when it does not fit. */
static void copy_regs(napi_env env, struct xts_env *e, uint8_t *src, size_t nsrc, uint8_t *dst, size_t ndst)
{
	uint64_t soff, doff, len;

	if (!range_regs(e, nsrc, ndst, &soff, &doff, &len)) {
		napi_throw_range_error(env, NULL, "copy: range out of bounds");
		return;
	}
	if (len > 0)
		memmove(dst + doff, src + soff, (size_t)len);
}

/*
 * copy(src, dst), the registers holding srcOff, dstOff, len: len bytes from
 * src[srcOff] to dst[dstOff] (memmove: the two may be views of one buffer).
 * The engine's stores and loads through a KeyID that does not encrypt copy
 * a page between a CPU's buffer and the machine's SharedArrayBuffer this
 * way: TypedArray.prototype.set wants a view of the exact range, a new
 * object per page on the fault and verify paths (hardware/engine.ts, with
 * the figures: plain-mmap cells 11-25% faster).
 */
static napi_value copy_bytes(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	struct xts_env *e = regs_call(env, info, 2, argv, "copy: expected (src, dst) after setRegs");
	uint8_t *src, *dst;
	size_t nsrc, ndst;

	if (e == NULL)
		return NULL;
	if (bytes_of(env, argv[0], &src, &nsrc, "copy: src and dst: expected Uint8Arrays") < 0 ||
	    bytes_of(env, argv[1], &dst, &ndst, "copy: src and dst: expected Uint8Arrays") < 0)
		return NULL;
	copy_regs(env, e, src, nsrc, dst, ndst);
	return NULL;
}

/*
 * bind(u8): an id for a Uint8Array on a SharedArrayBuffer, for cryptBound,
 * copyBound and compareBound, held until unbind(id) or unbindAll(); -1 when
 * every slot is taken. A TypeError for anything else.
 */
static napi_value bind_buf(napi_env env, napi_callback_info info)
{
	size_t argc = 1, n;
	napi_value argv[1], ab, ret;
	napi_typedarray_type type;
	struct xts_env *e;
	void *data;
	bool plain = true;
	double id = -1;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	/* a typed array's buffer is an ArrayBuffer or a SharedArrayBuffer */
	if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &n, &data, &ab, NULL) != napi_ok ||
	    type != napi_uint8_array || napi_is_arraybuffer(env, ab, &plain) != napi_ok || plain) {
		napi_throw_type_error(env, NULL, "bind: expected a Uint8Array on a SharedArrayBuffer");
		return NULL;
	}
	for (unsigned i = 0; i < NR_BOUND; i++) {
		struct bound *b = &e->bound[i];

		if (b->ref != NULL)
			continue;
		CHECK(env, napi_create_reference(env, argv[0], 1, &b->ref));
		b->p = data;
		b->n = n;
		id = (double)i + (double)NR_BOUND * b->gen;
		break;
	}
	CHECK(env, napi_create_double(env, id, &ret));
	return ret;
}

/* The slot an id names, or NULL for an id that names no bound buffer (never bound, unbound, or not an id). */
static struct bound *bound_of(struct xts_env *e, double id)
{
	uint64_t x;
	struct bound *b;

	if (!reg_u53(id, &x) || x / NR_BOUND >= BOUND_GENS)
		return NULL;
	b = &e->bound[x % NR_BOUND];
	return b->ref != NULL && b->gen == x / NR_BOUND ? b : NULL;
}

/* Let go of slot b's buffer: its id names nothing from now on. */
static napi_status unbind_slot(napi_env env, struct bound *b)
{
	napi_status st = napi_delete_reference(env, b->ref);

	b->ref = NULL;
	b->p = NULL;
	b->n = 0;
	b->gen = (b->gen + 1) % BOUND_GENS;
	return st;
}

/* unbind(id): the buffer is let go and its id names nothing from now on; an id that names nothing is ignored. */
static napi_value unbind_buf(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	struct xts_env *e;
	struct bound *b;
	double id;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	if (argc < 1 || napi_get_value_double(env, argv[0], &id) != napi_ok) {
		napi_throw_type_error(env, NULL, "unbind: expected an id");
		return NULL;
	}
	b = bound_of(e, id);
	if (b != NULL)
		CHECK(env, unbind_slot(env, b));
	return NULL;
}

/*
 * unbindAll(): let go of every buffer this thread bound. A cell's memory
 * and pages are bound on their first crypt, copy or compare; when the cell
 * closes, its threads let them all go. (A worker thread does not return to
 * its event loop while it serves rounds, and its heap grows too little for
 * many collections: with a FinalizationRegistry alone, one default process
 * bound 250 buffers in each of two threads, never let go, and found the
 * table full 52 times.)
 */
static napi_value unbind_all(napi_env env, napi_callback_info info)
{
	struct xts_env *e;

	(void)info;
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	for (unsigned i = 0; i < NR_BOUND; i++)
		if (e->bound[i].ref != NULL)
			CHECK(env, unbind_slot(env, &e->bound[i]));
	return NULL;
}

/* boundCount(): how many buffers this thread has bound now. */
static napi_value bound_count(napi_env env, napi_callback_info info)
{
	struct xts_env *e;
	napi_value ret;
	unsigned n = 0;

	(void)info;
	CHECK(env, napi_get_instance_data(env, (void **)&e));
	for (unsigned i = 0; i < NR_BOUND; i++)
		n += e->bound[i].ref != NULL;
	CHECK(env, napi_create_uint32(env, n, &ret));
	return ret;
}

/* The bound buffers the registers R_SRC and R_DST name; false when either id names nothing. */
static bool bound_pair(struct xts_env *e, struct bound **src, struct bound **dst)
{
	*src = bound_of(e, e->regs[R_SRC]);
	*dst = bound_of(e, e->regs[R_DST]);
	return *src != NULL && *dst != NULL;
}

/*
 * cryptBound(handle): crypt, src and dst the bound buffers whose ids are in
 * R_SRC and R_DST: true, or false (nothing done) when an id names nothing
 * any more (let go since: the caller binds again, or passes the arrays).
 */
static napi_value crypt_bound(napi_env env, napi_callback_info info)
{
	napi_value argv[1], ret;
	struct xts_key *k;
	struct xts_env *e = regs_call(env, info, 1, argv, "cryptBound: expected (handle) after setRegs");
	struct bound *src, *dst;
	bool ok;

	if (e == NULL)
		return NULL;
	CHECK(env, napi_get_value_external(env, argv[0], (void **)&k));
	ok = bound_pair(e, &src, &dst);
	if (ok)
		crypt_regs(env, e, k, src->p, src->n, dst->p, dst->n);
	CHECK(env, napi_get_boolean(env, ok, &ret));
	return ret;
}

/* copyBound(): copy, src and dst the bound buffers whose ids are in R_SRC and R_DST: true, or false as cryptBound. */
static napi_value copy_bound(napi_env env, napi_callback_info info)
{
	napi_value ret;
	struct xts_env *e = regs_call(env, info, 0, NULL, "copyBound: expected setRegs first");
	struct bound *src, *dst;
	bool ok;

	if (e == NULL)
		return NULL;
	ok = bound_pair(e, &src, &dst);
	if (ok)
		copy_regs(env, e, src->p, src->n, dst->p, dst->n);
	CHECK(env, napi_get_boolean(env, ok, &ret));
	return ret;
}

/*
 * compareBound(): memcmp of len bytes of the bound buffer R_SRC at srcOff
 * and the bound buffer R_DST at dstOff: -1, 0 or 1, as Buffer.compare gives
 * for (src range).compare(dst range); null when an id names nothing any
 * more. A CPU's check of each page it reads back against its pattern:
 * Buffer.compare with offsets cost about 100 ns a call here before its
 * memcmp began (its offsets checked in JavaScript, then a typed array's
 * bytes asked for twice).
 */
static napi_value compare_bound(napi_env env, napi_callback_info info)
{
	struct xts_env *e = regs_call(env, info, 0, NULL, "compareBound: expected setRegs first");
	struct bound *a, *b;
	uint64_t aoff, boff, len;
	napi_value ret;
	int r;

	if (e == NULL)
		return NULL;
	if (!bound_pair(e, &a, &b)) {
		CHECK(env, napi_get_null(env, &ret));
		return ret;
	}
	if (!range_regs(e, a->n, b->n, &aoff, &boff, &len)) {
		napi_throw_range_error(env, NULL, "compare: range out of bounds");
		return NULL;
	}
	r = len > 0 ? memcmp(a->p + aoff, b->p + boff, (size_t)len) : 0;
	CHECK(env, napi_create_int32(env, (r > 0) - (r < 0), &ret));
	return ret;
}

/*
 * yieldCpu(): sched_yield(2), for the simulator's spin-waits when its threads
 * outnumber the host CPUs (kernel/backoff.ts). A thread polling for a
 * hand-off gives its CPU to any thread queued on it, yet the CPU does not go
 * idle: waking an idle vCPU from its halt costs tens of microseconds on a VM.
 * (It lives here because this is the project's one native module.)
 */
static napi_value yield_cpu(napi_env env, napi_callback_info info)
{
	(void)env;
	(void)info;
	sched_yield();
	return NULL;
}

/*
 * schedstat(out): the calling thread's time on a host CPU and its time
 * runnable but waiting for one (on a runqueue), in ns, into out[0] and
 * out[1], and where out has room, how many times it was put on a CPU into
 * out[2]; false where the host does not say (not Linux, or a kernel without
 * CONFIG_SCHED_INFO). Linux keeps the three per task in /proc/<pid>/task/
 * <tid>/schedstat (Documentation/scheduler/sched-stats.rst). kernel/
 * backoff.ts takes windows of them: how much of its runnable time a thread
 * of the simulator waited for a CPU, and how long each wait was, which say
 * whether the host has a CPU free for every one of them. Each thread keeps
 * its own file open (pread at 0 reads it anew) for as long as it lives: the
 * simulator's threads live as long as the process.
 */
static __thread int sched_fd = -2;

static napi_value schedstat(napi_env env, napi_callback_info info)
{
	size_t argc = 1, n = 0;
	napi_value argv[1], ret;
	napi_typedarray_type type;
	void *data = NULL;
	char buf[128];
	unsigned long long run, wait, slices;
	ssize_t got;
	bool ok = false;

	CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &n, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
	    n < 2) {
		napi_throw_type_error(env, NULL, "schedstat: expected a Float64Array of at least 2");
		return NULL;
	}
	if (sched_fd == -2)
		sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (sched_fd >= 0 && (got = pread(sched_fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[got] = '\0';
		if (sscanf(buf, "%llu %llu %llu", &run, &wait, &slices) == 3) {
			((double *)data)[0] = (double)run;
			((double *)data)[1] = (double)wait;
			if (n >= 3)
				((double *)data)[2] = (double)slices;
			ok = true;
		}
	}
	CHECK(env, napi_get_boolean(env, ok, &ret));
	return ret;
}

/*
 * hostCpu(): the host CPU the calling thread runs on now (sched_getcpu(3)),
 * -1 where the host does not say. moveOff(): move the calling thread to
 * another of the host CPUs it may run on, and leave it free to run anywhere
 * again: sched_setaffinity(2) to its mask less the CPU it is on (Linux
 * migrates a running thread before the call returns: kernel/sched/core.c,
 * __set_cpus_allowed_ptr), then to its mask again, which does not move it
 * back. Returns the CPU it landed on, or -1 where it could not move (one CPU
 * allowed, or the calls refused). kernel/smp.ts spreadOut says when: two
 * worker CPUs' threads that the host's scheduler keeps on one host CPU while
 * another has room.
 */
static napi_value host_cpu(napi_env env, napi_callback_info info)
{
	napi_value ret;

	(void)info;
	CHECK(env, napi_create_int32(env, sched_getcpu(), &ret));
	return ret;
}

static napi_value move_off(napi_env env, napi_callback_info info)
{
	cpu_set_t was, to;
	int me = sched_getcpu(), landed = -1;
	napi_value ret;

	(void)info;
	if (me >= 0 && me < CPU_SETSIZE && sched_getaffinity(0, sizeof(was), &was) == 0 && CPU_ISSET(me, &was) &&
	    CPU_COUNT(&was) > 1) {
		to = was;
		CPU_CLR(me, &to);
		if (sched_setaffinity(0, sizeof(to), &to) == 0) {
			landed = sched_getcpu();
			if (sched_setaffinity(0, sizeof(was), &was) != 0)
				landed = -1; /* (cannot happen: the mask it had) */
		}
	}
	CHECK(env, napi_create_int32(env, landed, &ret));
	return ret;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_value impl;
	const char *name = "openssl-evp";
	struct xts_env *e = calloc(1, sizeof(*e));

	if (e == NULL || napi_set_instance_data(env, e, env_free, NULL) != napi_ok) {
		free(e);
		napi_throw_error(env, NULL, "xts-native: out of memory");
		return NULL;
	}

#ifdef XTS_VAES
	__builtin_cpu_init();
	if (have_vaes())
		name = "vaes-avx512";
#endif
	CHECK(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &impl));
	napi_property_descriptor props[] = {
		{ "importKey", NULL, import_key, NULL, NULL, NULL, napi_default, NULL },
		{ "rekey", NULL, rekey, NULL, NULL, NULL, napi_default, NULL },
		{ "crypt", NULL, crypt_units, NULL, NULL, NULL, napi_default, NULL },
		{ "setRegs", NULL, set_regs, NULL, NULL, NULL, napi_default, NULL },
		{ "yieldCpu", NULL, yield_cpu, NULL, NULL, NULL, napi_default, NULL },
		{ "schedstat", NULL, schedstat, NULL, NULL, NULL, napi_default, NULL },
		{ "hostCpu", NULL, host_cpu, NULL, NULL, NULL, napi_default, NULL },
		{ "moveOff", NULL, move_off, NULL, NULL, NULL, napi_default, NULL },
		{ "copy", NULL, copy_bytes, NULL, NULL, NULL, napi_default, NULL },
		{ "bind", NULL, bind_buf, NULL, NULL, NULL, napi_default, NULL },
		{ "unbind", NULL, unbind_buf, NULL, NULL, NULL, napi_default, NULL },
		{ "unbindAll", NULL, unbind_all, NULL, NULL, NULL, napi_default, NULL },
		{ "boundCount", NULL, bound_count, NULL, NULL, NULL, napi_default, NULL },
		{ "cryptBound", NULL, crypt_bound, NULL, NULL, NULL, napi_default, NULL },
		{ "copyBound", NULL, copy_bound, NULL, NULL, NULL, napi_default, NULL },
		{ "compareBound", NULL, compare_bound, NULL, NULL, NULL, napi_default, NULL },
		{ "impl", NULL, NULL, NULL, NULL, impl, napi_enumerable, NULL },
	};

	CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
