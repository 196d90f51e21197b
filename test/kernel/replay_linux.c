/*
 * replay_linux.c - the real-Linux side of the VMA differential test.
 *
 * Reads a trace on stdin, one flat JSON object per line:
 *   {"op":"mmap","addr":"0x200000000","len":"0x3000","prot":"rw-","flags":["MAP_PRIVATE",...]}
 *     (optional "fd" and "offset" integers, default -1 and 0: the file-backed and bad-fd paths)
 *   {"op":"munmap","addr":...,"len":...}
 *   {"op":"mprotect","addr":...,"len":...,"prot":"r--"}
 *   {"op":"madvise","addr":...,"len":...,"advice":"MADV_DONTNEED"}
 *   {"op":"maps"}
 * runs each call on the running kernel with raw syscall(2) and prints, per line:
 *   {"ret":R,"errno":E}   R = "0x..." for a successful mmap, 0 for other successes, -1 on
 *                          failure; E = null or the errno name ("EINVAL").
 *   for maps: the /proc/self/maps lines of the VMAs that intersect the test window
 *   [0x200000000, 0x400000000000), verbatim with trailing whitespace trimmed, then {"maps":N}.
 *
 * Values: addr, len are "0x..." hex strings or JSON integers; prot is "rwx"-style or a JSON
 * integer (raw bits); flags is an array of MAP_* names (or a JSON integer, raw bits); advice is
 * a MADV_* name or a JSON integer. Integers are taken as 64-bit two's complement and passed to
 * the kernel unchanged. Unknown keys, keys that do not belong to the op, duplicate or missing
 * keys are errors. Blank lines are skipped. Any malformed input: message on stderr, exit 2.
 *
 * Safety: every trace is replayed in a fresh process. Before a call that could unmap or
 * change memory outside the test region (MAP_FIXED, munmap, mprotect, madvise with a range
 * reaching out of it), the replayer checks that the range touches no VMA outside the region,
 * so a bad trace cannot clobber the replayer itself; such a trace is refused (exit 2).
 *
 * Build: gcc -O1 -Wall -Werror -std=gnu11 -o replay_linux replay_linux.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define REGION_START 0x200000000UL
/*
 * The traces aim at [REGION_START, REGION_START + 1 MiB), but a mapping sized to test overcommit
 * reaches tens of GiB past it. Everything from REGION_START up to 64 TiB is the test's: no
 * process mapping lives there (PIE binaries load near 0x55..., mmap_base is near 0x7f...), which
 * main checks at startup. The guard and the maps output use this window.
 */
#define REGION_END 0x400000000000UL
#define PAGE_SZ 4096UL

static unsigned long lineno;
static const char *cur_line;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "replay_linux: ");
	if (lineno)
		fprintf(stderr, "line %lu: ", lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cur_line)
		fprintf(stderr, "\n  input: %.*s", (int)strcspn(cur_line, "\r\n"), cur_line);
	fputc('\n', stderr);
	exit(2);
}

/* ---------------------------------------------------------------- name tables */

struct name_val {
	const char *name;
	unsigned long val;
};

/* Values from include/uapi (asm-generic/mman-common.h, mman.h, linux/mman.h), spelled out so
 * that an older libc's headers do not matter. */
static const struct name_val map_flag_names[] = {
	{ "MAP_SHARED", 0x01 }, { "MAP_PRIVATE", 0x02 }, { "MAP_SHARED_VALIDATE", 0x03 },
	{ "MAP_DROPPABLE", 0x08 }, { "MAP_FIXED", 0x10 }, { "MAP_ANONYMOUS", 0x20 },
	{ "MAP_ANON", 0x20 }, { "MAP_32BIT", 0x40 }, { "MAP_ABOVE4G", 0x80 },
	{ "MAP_GROWSDOWN", 0x100 }, { "MAP_DENYWRITE", 0x800 }, { "MAP_EXECUTABLE", 0x1000 },
	{ "MAP_LOCKED", 0x2000 }, { "MAP_NORESERVE", 0x4000 }, { "MAP_POPULATE", 0x8000 },
	{ "MAP_NONBLOCK", 0x10000 }, { "MAP_STACK", 0x20000 }, { "MAP_HUGETLB", 0x40000 },
	{ "MAP_SYNC", 0x80000 }, { "MAP_FIXED_NOREPLACE", 0x100000 },
	{ "MAP_UNINITIALIZED", 0x4000000 },
	{ NULL, 0 }
};

static const struct name_val advice_names[] = {
	{ "MADV_NORMAL", 0 }, { "MADV_RANDOM", 1 }, { "MADV_SEQUENTIAL", 2 },
	{ "MADV_WILLNEED", 3 }, { "MADV_DONTNEED", 4 }, { "MADV_FREE", 8 }, { "MADV_REMOVE", 9 },
	{ "MADV_DONTFORK", 10 }, { "MADV_DOFORK", 11 }, { "MADV_MERGEABLE", 12 },
	{ "MADV_UNMERGEABLE", 13 }, { "MADV_HUGEPAGE", 14 }, { "MADV_NOHUGEPAGE", 15 },
	{ "MADV_DONTDUMP", 16 }, { "MADV_DODUMP", 17 }, { "MADV_WIPEONFORK", 18 },
	{ "MADV_KEEPONFORK", 19 }, { "MADV_COLD", 20 }, { "MADV_PAGEOUT", 21 },
	{ "MADV_POPULATE_READ", 22 }, { "MADV_POPULATE_WRITE", 23 },
	{ "MADV_DONTNEED_LOCKED", 24 }, { "MADV_COLLAPSE", 25 }, { "MADV_HWPOISON", 100 },
	{ "MADV_SOFT_OFFLINE", 101 }, { "MADV_GUARD_INSTALL", 102 }, { "MADV_GUARD_REMOVE", 103 },
	{ NULL, 0 }
};

#define E(x) { #x, x }
static const struct name_val errno_names[] = {
	E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(ENXIO), E(E2BIG), E(EBADF), E(EAGAIN),
	E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENODEV), E(EINVAL),
	E(ENFILE), E(EMFILE), E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ERANGE), E(ENOSYS),
	E(EOVERFLOW), E(EOPNOTSUPP), E(EHWPOISON), E(ENOKEY),
	{ NULL, 0 }
};
#undef E

static const char *errno_name(int e)
{
	static char buf[32];
	const struct name_val *p;

	for (p = errno_names; p->name; p++)
		if (p->val == (unsigned long)e)
			return p->name;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static int lookup(const struct name_val *tab, const char *name, unsigned long *out)
{
	for (; tab->name; tab++)
		if (!strcmp(tab->name, name)) {
			*out = tab->val;
			return 0;
		}
	return -1;
}

/* ---------------------------------------------------------------- minimal JSON */

static const char *p; /* parse cursor into the current line */

static void skip_ws(void)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
}

static void expect(char c)
{
	skip_ws();
	if (*p != c)
		die("expected '%c' at column %ld", c, (long)(p - cur_line) + 1);
	p++;
}

/* A JSON string without \u escapes, copied into out (NUL-terminated). */
static void parse_string(char *out, size_t cap)
{
	size_t n = 0;

	expect('"');
	for (;;) {
		char c = *p++;

		if (c == '\0')
			die("unterminated string");
		if (c == '"')
			break;
		if ((unsigned char)c < 0x20)
			die("control character in string");
		if (c == '\\') {
			c = *p++;
			switch (c) {
			case '"': case '\\': case '/': break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			default: die("unsupported escape '\\%c' in string", c ? c : '0');
			}
		}
		if (n + 1 >= cap)
			die("string too long");
		out[n++] = c;
	}
	out[n] = '\0';
}

/* A JSON integer (no fraction or exponent), as 64-bit two's complement. */
static uint64_t parse_int(void)
{
	int neg = 0;
	uint64_t v = 0;
	const char *start;

	skip_ws();
	if (*p == '-') {
		neg = 1;
		p++;
	}
	start = p;
	if (*p < '0' || *p > '9')
		die("expected a number at column %ld", (long)(p - cur_line) + 1);
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		die("number with a leading zero");
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			die("number out of 64-bit range");
		v = v * 10 + d;
		p++;
	}
	if (*p == '.' || *p == 'e' || *p == 'E')
		die("only integers are accepted, got a fraction or exponent after '%.*s'",
		    (int)(p - start), start);
	if (neg && v > (uint64_t)INT64_MAX + 1)
		die("number out of 64-bit range");
	return neg ? (uint64_t)0 - v : v;
}

static int peek_is_string(void)
{
	skip_ws();
	return *p == '"';
}

/*
 * A register value written as a string: "0x..." hex or decimal digits, optionally after '-'
 * (two's complement). Within 64 bits: unsigned, or down to -2^63.
 */
static uint64_t reg_from_string(const char *key, const char *s)
{
	const char *q = s;
	int neg = 0, hex = 0;
	uint64_t v = 0;

	if (*q == '-') {
		neg = 1;
		q++;
	}
	if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
		hex = 1;
		q += 2;
	}
	if (!*q)
		die("\"%s\": expected a \"0x...\" hex or decimal string, got \"%s\"", key, s);
	for (; *q; q++) {
		unsigned d;

		if (*q >= '0' && *q <= '9')
			d = (unsigned)(*q - '0');
		else if (hex && *q >= 'a' && *q <= 'f')
			d = (unsigned)(*q - 'a' + 10);
		else if (hex && *q >= 'A' && *q <= 'F')
			d = (unsigned)(*q - 'A' + 10);
		else
			die("\"%s\": bad digit in \"%s\"", key, s);
		if (hex ? v >> 60 != 0 : v > (UINT64_MAX - d) / 10)
			die("\"%s\": \"%s\" is out of 64-bit range", key, s);
		v = hex ? v << 4 | d : v * 10 + d;
	}
	if (neg && v > (uint64_t)INT64_MAX + 1)
		die("\"%s\": \"%s\" is out of 64-bit range", key, s);
	return neg ? (uint64_t)0 - v : v;
}

/* Any register field: a JSON integer or a string as above. */
static uint64_t parse_reg(const char *key)
{
	char s[64];

	if (!peek_is_string())
		return parse_int();
	parse_string(s, sizeof(s));
	return reg_from_string(key, s);
}

static uint64_t parse_prot(void)
{
	char s[64];
	uint64_t v = 0;

	if (!peek_is_string())
		return parse_int();
	parse_string(s, sizeof(s));
	if (s[0] == '-' && s[1] >= '0' && s[1] <= '9')
		return reg_from_string("prot", s);
	if (s[0] >= '0' && s[0] <= '9')
		return reg_from_string("prot", s);
	if (strlen(s) != 3 || (s[0] != 'r' && s[0] != '-') || (s[1] != 'w' && s[1] != '-') ||
	    (s[2] != 'x' && s[2] != '-'))
		die("\"prot\": expected \"rwx\"-style string or a number, got \"%s\"", s);
	if (s[0] == 'r')
		v |= PROT_READ;
	if (s[1] == 'w')
		v |= PROT_WRITE;
	if (s[2] == 'x')
		v |= PROT_EXEC;
	return v;
}

static uint64_t parse_flags(void)
{
	char s[64];
	unsigned long bit;
	uint64_t v = 0;

	skip_ws();
	if (*p != '[')
		return parse_reg("flags");
	p++;
	skip_ws();
	if (*p == ']') {
		p++;
		return 0;
	}
	for (;;) {
		parse_string(s, sizeof(s));
		if (lookup(map_flag_names, s, &bit))
			die("\"flags\": unknown flag \"%s\"", s);
		v |= bit;
		skip_ws();
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ']') {
			p++;
			return v;
		}
		die("\"flags\": expected ',' or ']' at column %ld", (long)(p - cur_line) + 1);
	}
}

static uint64_t parse_advice(void)
{
	char s[64];
	unsigned long v;

	if (!peek_is_string())
		return parse_int();
	parse_string(s, sizeof(s));
	if ((s[0] >= '0' && s[0] <= '9') || s[0] == '-')
		return reg_from_string("advice", s);
	if (lookup(advice_names, s, &v))
		die("\"advice\": unknown advice name \"%s\" (use a number for raw values)", s);
	return v;
}

enum op { OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_MADVISE, OP_MAPS };

enum field { F_ADDR, F_LEN, F_PROT, F_FLAGS, F_ADVICE, F_FD, F_OFFSET, F_NR };
static const char *const field_names[F_NR] = { "addr", "len", "prot", "flags", "advice", "fd", "offset" };

/* Fields an op may have without requiring them: mmap's fd (default -1) and offset (0). */
static const unsigned op_optional[] = {
	[OP_MMAP] = 1u << F_FD | 1u << F_OFFSET,
};

/* Which fields each op requires (and allows): bit per enum field. */
static const unsigned op_fields[] = {
	[OP_MMAP] = 1u << F_ADDR | 1u << F_LEN | 1u << F_PROT | 1u << F_FLAGS,
	[OP_MUNMAP] = 1u << F_ADDR | 1u << F_LEN,
	[OP_MPROTECT] = 1u << F_ADDR | 1u << F_LEN | 1u << F_PROT,
	[OP_MADVISE] = 1u << F_ADDR | 1u << F_LEN | 1u << F_ADVICE,
	[OP_MAPS] = 0,
};

struct call {
	enum op op;
	unsigned have; /* bit per enum field */
	uint64_t v[F_NR];
};

static void parse_line(const char *line, struct call *c)
{
	char key[32], opname[32];
	int have_op = 0;
	unsigned i;

	memset(c, 0, sizeof(*c));
	p = line;
	expect('{');
	skip_ws();
	if (*p == '}')
		die("empty object");
	for (;;) {
		parse_string(key, sizeof(key));
		expect(':');
		if (!strcmp(key, "op")) {
			if (have_op)
				die("duplicate key \"op\"");
			have_op = 1;
			if (!peek_is_string())
				die("\"op\" must be a string");
			parse_string(opname, sizeof(opname));
			if (!strcmp(opname, "mmap"))
				c->op = OP_MMAP;
			else if (!strcmp(opname, "munmap"))
				c->op = OP_MUNMAP;
			else if (!strcmp(opname, "mprotect"))
				c->op = OP_MPROTECT;
			else if (!strcmp(opname, "madvise"))
				c->op = OP_MADVISE;
			else if (!strcmp(opname, "maps"))
				c->op = OP_MAPS;
			else
				die("unknown op \"%s\"", opname);
		} else {
			for (i = 0; i < F_NR; i++)
				if (!strcmp(key, field_names[i]))
					break;
			if (i == F_NR)
				die("unknown key \"%s\"", key);
			if (c->have & 1u << i)
				die("duplicate key \"%s\"", key);
			c->have |= 1u << i;
			switch ((enum field)i) {
			case F_ADDR: case F_LEN: c->v[i] = parse_reg(key); break;
			case F_PROT: c->v[i] = parse_prot(); break;
			case F_FLAGS: c->v[i] = parse_flags(); break;
			case F_ADVICE: c->v[i] = parse_advice(); break;
			case F_FD: case F_OFFSET: c->v[i] = parse_reg(key); break;
			case F_NR: break;
			}
		}
		skip_ws();
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}') {
			p++;
			break;
		}
		die("expected ',' or '}' at column %ld", (long)(p - cur_line) + 1);
	}
	skip_ws();
	if (*p)
		die("trailing characters after the object");
	if (!have_op)
		die("missing \"op\"");
	for (i = 0; i < F_NR; i++) {
		if ((op_fields[c->op] & 1u << i) && !(c->have & 1u << i))
			die("\"%s\" needs \"%s\"", opname, field_names[i]);
		if (!((op_fields[c->op] | op_optional[c->op]) & 1u << i) && (c->have & 1u << i))
			die("\"%s\" does not take \"%s\"", opname, field_names[i]);
	}
}

/* ---------------------------------------------------------------- /proc/self/maps */

static char maps_buf[4 << 20];

/* Reads /proc/self/maps into maps_buf (NUL-terminated); returns its length. */
static size_t read_maps(void)
{
	size_t n = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open /proc/self/maps: %s", strerror(errno));
	for (;;) {
		ssize_t r = read(fd, maps_buf + n, sizeof(maps_buf) - 1 - n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read /proc/self/maps: %s", strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == sizeof(maps_buf) - 1)
			die("/proc/self/maps larger than %zu bytes", sizeof(maps_buf) - 1);
	}
	close(fd);
	maps_buf[n] = '\0';
	return n;
}

/*
 * Calls fn(start, end, line, linelen) for every maps line, trailing whitespace trimmed.
 * Returns the number of lines for which fn returned nonzero.
 */
static unsigned long for_each_vma(int (*fn)(unsigned long, unsigned long, const char *, size_t,
					     void *), void *arg)
{
	char *s = maps_buf, *nl, *end;
	unsigned long start, stop, count = 0;
	size_t len;

	read_maps();
	for (; *s; s = nl + 1) {
		nl = strchr(s, '\n');
		if (!nl)
			die("/proc/self/maps: last line without newline");
		len = (size_t)(nl - s);
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		errno = 0;
		start = strtoul(s, &end, 16);
		if (errno || *end != '-')
			die("/proc/self/maps: cannot parse \"%.*s\"", (int)len, s);
		stop = strtoul(end + 1, &end, 16);
		if (errno || *end != ' ')
			die("/proc/self/maps: cannot parse \"%.*s\"", (int)len, s);
		if (fn(start, stop, s, len, arg))
			count++;
	}
	return count;
}

static int print_if_in_region(unsigned long start, unsigned long end, const char *line,
			      size_t len, void *arg)
{
	(void)arg;
	if (end <= REGION_START || start >= REGION_END)
		return 0;
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
	return 1;
}

static int in_region(unsigned long start, unsigned long end, const char *line, size_t len,
		     void *arg)
{
	(void)line;
	(void)len;
	(void)arg;
	return !(end <= REGION_START || start >= REGION_END);
}

struct range {
	unsigned long start, end;
};

static int outside_region_overlap(unsigned long start, unsigned long end, const char *line,
				  size_t len, void *arg)
{
	const struct range *r = arg;

	(void)line;
	(void)len;
	if (end <= r->start || start >= r->end)
		return 0;
	return start < REGION_START || end > REGION_END;
}

/*
 * Refuse a call whose page-rounded range [addr, addr + len) reaches out of the test region and
 * overlaps a VMA there: the kernel would change the replayer's own memory. Ranges that wrap
 * or are empty are left to the kernel, which rejects them before touching anything.
 */
static void guard_range(uint64_t addr, uint64_t len)
{
	struct range r;
	uint64_t alen;

	r.start = addr & ~(PAGE_SZ - 1);
	if (len > UINT64_MAX - (PAGE_SZ - 1))
		return;
	alen = (len + PAGE_SZ - 1) & ~(PAGE_SZ - 1);
	if (addr > UINT64_MAX - alen)
		return;
	r.end = addr + alen;
	if (r.end <= r.start)
		return;
	if (r.start >= REGION_START && r.end <= REGION_END)
		return;
	if (for_each_vma(outside_region_overlap, &r))
		die("refusing a call on [0x%lx, 0x%lx): it overlaps memory outside the test window "
		    "[0x%lx, 0x%lx)", r.start, r.end, REGION_START, REGION_END);
}

/*
 * Run without CAP_SYS_RAWIO and CAP_IPC_LOCK, as an ordinary process would (root has them), and
 * with RLIMIT_MEMLOCK = REPLAY_MEMLOCK: then MAP_FIXED below vm.mmap_min_addr is EPERM and
 * MAP_LOCKED past the limit EAGAIN whoever runs the test, and the model is told the same.
 * (main also refuses MADV_HWPOISON / MADV_SOFT_OFFLINE for a process that could really
 * inject them.)
 */
#define REPLAY_MEMLOCK (256 * 1024)
static void drop_privileges(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		die("capget: %s", strerror(errno));
	static const int drop[] = { CAP_SYS_RAWIO, CAP_IPC_LOCK };
	struct rlimit rl = { .rlim_cur = REPLAY_MEMLOCK, .rlim_max = REPLAY_MEMLOCK };
	unsigned i;

	for (i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		data[CAP_TO_INDEX(drop[i])].effective &= ~CAP_TO_MASK(drop[i]);
		data[CAP_TO_INDEX(drop[i])].permitted &= ~CAP_TO_MASK(drop[i]);
		data[CAP_TO_INDEX(drop[i])].inheritable &= ~CAP_TO_MASK(drop[i]);
	}
	if (syscall(SYS_capset, &hdr, data))
		die("capset: %s", strerror(errno));
	if (setrlimit(RLIMIT_MEMLOCK, &rl))
		die("setrlimit(RLIMIT_MEMLOCK, %d): %s", REPLAY_MEMLOCK, strerror(errno));
}

static int has_sys_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		die("capget: %s", strerror(errno));
	return !!(data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN));
}

/*
 * Ranges the kernel refuses from their numbers alone, before it looks at any VMA, so the guard
 * need not (and must not: the test wants the kernel's answer) look at them.
 * x86-64 with 4-level paging: TASK_SIZE = 2^47 - 4096.
 */
#define TASK_SZ 0x7ffffffff000UL

/* do_mmap: PAGE_ALIGN(len) wraps to 0 or passes TASK_SIZE; __get_unmapped_area: addr > TASK_SIZE - len. */
static int mmap_range_rejected(uint64_t addr, uint64_t len)
{
	uint64_t alen = (len + PAGE_SZ - 1) & ~(PAGE_SZ - 1);

	return len == 0 || alen == 0 || alen > TASK_SZ || addr > TASK_SZ - alen;
}

/* do_vmi_munmap: start > TASK_SIZE or len > TASK_SIZE - start. */
static int munmap_range_rejected(uint64_t addr, uint64_t len)
{
	return addr > TASK_SZ || len > TASK_SZ - addr;
}

/* ---------------------------------------------------------------- main */

static void print_result(long ret, int err, int is_mmap)
{
	if (ret == -1)
		printf("{\"ret\":-1,\"errno\":\"%s\"}\n", errno_name(err));
	else if (is_mmap)
		printf("{\"ret\":\"0x%lx\",\"errno\":null}\n", (unsigned long)ret);
	else
		printf("{\"ret\":%ld,\"errno\":null}\n", ret);
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	struct call c;
	long ret;
	int err;

	if (sysconf(_SC_PAGESIZE) != (long)PAGE_SZ)
		die("page size is %ld, the trace format assumes %lu", sysconf(_SC_PAGESIZE), PAGE_SZ);
	if (for_each_vma(in_region, NULL))
		die("the test region [0x%lx, 0x%lx) is not empty at startup (test window)", REGION_START, REGION_END);
	drop_privileges();

	while ((n = getline(&line, &cap, stdin)) > 0) {
		const char *q;

		lineno++;
		if ((size_t)n != strlen(line))
			die("NUL byte in input");
		for (q = line; *q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'; q++)
			;
		if (!*q)
			continue;
		cur_line = line;
		parse_line(line, &c);

		err = 0;
		switch (c.op) {
		case OP_MMAP:
			if ((c.v[F_FLAGS] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) &&
			    !mmap_range_rejected(c.v[F_ADDR], c.v[F_LEN]))
				guard_range(c.v[F_ADDR], c.v[F_LEN]);
			errno = 0;
			ret = syscall(SYS_mmap, (unsigned long)c.v[F_ADDR], (unsigned long)c.v[F_LEN],
				      (unsigned long)c.v[F_PROT], (unsigned long)c.v[F_FLAGS],
				      c.have & 1u << F_FD ? (unsigned long)c.v[F_FD] : ~0UL,
				      (unsigned long)c.v[F_OFFSET]);
			err = errno;
			print_result(ret, err, 1);
			break;
		case OP_MUNMAP:
			if (!munmap_range_rejected(c.v[F_ADDR], c.v[F_LEN]))
				guard_range(c.v[F_ADDR], c.v[F_LEN]);
			errno = 0;
			ret = syscall(SYS_munmap, (unsigned long)c.v[F_ADDR], (unsigned long)c.v[F_LEN]);
			err = errno;
			print_result(ret, err, 0);
			break;
		case OP_MPROTECT:
			guard_range(c.v[F_ADDR], c.v[F_LEN]);
			errno = 0;
			ret = syscall(SYS_mprotect, (unsigned long)c.v[F_ADDR], (unsigned long)c.v[F_LEN],
				      (unsigned long)c.v[F_PROT]);
			err = errno;
			print_result(ret, err, 0);
			break;
		case OP_MADVISE:
			if (((int)c.v[F_ADVICE] == 100 || (int)c.v[F_ADVICE] == 101) && has_sys_admin())
				die("refusing MADV_HWPOISON/MADV_SOFT_OFFLINE with CAP_SYS_ADMIN: it would "
				    "poison real memory");
			guard_range(c.v[F_ADDR], c.v[F_LEN]);
			errno = 0;
			ret = syscall(SYS_madvise, (unsigned long)c.v[F_ADDR], (unsigned long)c.v[F_LEN],
				      (unsigned long)c.v[F_ADVICE]); /* the kernel takes the low 32 bits */
			err = errno;
			print_result(ret, err, 0);
			break;
		case OP_MAPS:
			printf("{\"maps\":%lu}\n", for_each_vma(print_if_in_region, NULL));
			break;
		}
		cur_line = NULL;
	}
	if (ferror(stdin))
		die("reading stdin: %s", strerror(errno));
	free(line);
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "replay_linux: writing stdout failed\n");
		return 1;
	}
	return 0;
}
