// memcrypt-bench calibration probe: times the host-side events the cost table
// (hardware/costs.ts) prices, on the machine it runs on, and prints one JSON
// object on stdout. calibrate.ts compiles it into a temp dir and derives the
// `measured` cost entries from it.
//
// Usage: probe REPS IOFILE
//   REPS    repetitions of every measurement (>= 1)
//   IOFILE  a path the probe may create for pwrite/pread; unlinked at once
//
// Each repetition is the mean per operation over N operations, N chosen once
// per measurement (during a warm-up that grows it) so that one repetition
// takes about TARGET_NS of timed work. Only the operation is timed: the setup
// it needs (mmap, touching pages before a madvise, writing a page before its
// clflush) is done in batches outside the clock_gettime pair, so no per-call
// clock overhead has to be subtracted.
//
// Output: {"probe":1,"reps":R,"results":{NAME:{"samples_ns":[..R..],
//          "iterations":N,"what":"..."} | {"unavailable":"reason"}, ...}}
// Exit status: 0 with that object, 2 on bad usage (message on stderr).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#define PAGE 4096L
#define TARGET_NS 25000000.0  /* timed work per repetition: 25 ms */
#define WARMUP_NS 2000000.0   /* the N search stops once a batch takes 2 ms */
#define MAX_REPS 10000L
#define ENOSYS_NR 1023        /* no architecture has a syscall with this number */
#if defined(SYS_memfd_secret)
#define MEMFD_SECRET_NR SYS_memfd_secret
#elif defined(__x86_64__)
#define MEMFD_SECRET_NR 447
#endif

#define FAULT_CHUNK 256L      /* pages per fresh mapping for the fault probes */
#define ZAP_PAGES 64L         /* pages per madvise(DONTNEED) */
#define ZAP_BATCH 16L         /* madvise calls per touched region */
#define FLUSH_BATCH 16L       /* pages written, then flushed, per batch */
#define IO_SLOTS 256L         /* page-aligned offsets the file I/O cycles over */

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * A measurement: run(n) does n operations and returns the timed ns, or -1
 * with errno set when an operation failed (the measurement is then reported
 * unavailable, naming `failing` and strerror(errno)).
 */
struct probe {
	const char *name;
	const char *what;
	const char *failing;
	double (*run)(long n);
};

/* ---- getppid, enosys ---- */

static double run_getppid(long n)
{
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	return now_ns() - t0;
}

static double run_enosys(long n)
{
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		syscall(ENOSYS_NR);
	double t = now_ns() - t0;
	/* the assertion is outside the loop: a kernel that grew the syscall fails here */
	errno = 0;
	if (syscall(ENOSYS_NR) != -1 || errno != ENOSYS) {
		if (errno == 0)
			errno = EEXIST;
		return -1;
	}
	return t;
}

/* ---- mprotect split + merge ---- */

static char *mp_area;

static double run_mprotect(long n)
{
	char *mid = mp_area + PAGE;
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (mprotect(mid, PAGE, PROT_READ) != 0)
			return -1;
		if (mprotect(mid, PAGE, PROT_READ | PROT_WRITE) != 0)
			return -1;
	}
	return now_ns() - t0;
}

/* ---- madvise(DONTNEED) over 64 present pages ---- */

static char *zap_area; /* ZAP_BATCH * ZAP_PAGES pages, THP off */

static double run_madvise(long n)
{
	double t = 0;
	for (long done = 0; done < n;) {
		long k = n - done < ZAP_BATCH ? n - done : ZAP_BATCH;
		for (long p = 0; p < k * ZAP_PAGES; p++)
			zap_area[p * PAGE] = 1; /* make every page present again */
		double t0 = now_ns();
		for (long c = 0; c < k; c++)
			if (madvise(zap_area + c * ZAP_PAGES * PAGE, ZAP_PAGES * PAGE, MADV_DONTNEED) != 0)
				return -1;
		t += now_ns() - t0;
		done += k;
	}
	return t;
}

/* ---- first-touch faults: anonymous and memfd_secret ---- */

static long secret_chunk; /* pages per memfd_secret mapping, within RLIMIT_MEMLOCK */

/* Touch each of `pages` pages of `p` once, timed. */
static double touch_pages(volatile char *p, long pages)
{
	double t0 = now_ns();
	for (long i = 0; i < pages; i++)
		p[i * PAGE] = 1;
	return now_ns() - t0;
}

static double run_anon_fault(long n)
{
	double t = 0;
	for (long done = 0; done < n;) {
		long k = n - done < FAULT_CHUNK ? n - done : FAULT_CHUNK;
		char *p = mmap(NULL, k * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -1;
		/* a huge page would turn 512 faults into one (EINVAL: no THP, nothing to hide) */
		madvise(p, k * PAGE, MADV_NOHUGEPAGE);
		t += touch_pages(p, k);
		munmap(p, k * PAGE);
		done += k;
	}
	return t;
}

#if defined(MEMFD_SECRET_NR)
static double run_secret_fault(long n)
{
	double t = 0;
	if (secret_chunk < 1) {
		errno = ENOMEM; /* RLIMIT_MEMLOCK is below two pages */
		return -1;
	}
	for (long done = 0; done < n;) {
		long k = n - done < secret_chunk ? n - done : secret_chunk;
		/* a fresh fd each time: pages of an old one would already be off the direct map */
		int fd = (int)syscall(MEMFD_SECRET_NR, 0);
		if (fd < 0)
			return -1;
		if (ftruncate(fd, k * PAGE) != 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		char *p = mmap(NULL, k * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		t += touch_pages(p, k);
		munmap(p, k * PAGE);
		close(fd);
		done += k;
	}
	return t;
}
#endif

/* ---- clflush of a cached page ---- */

#if defined(__x86_64__)
static char *flush_area; /* FLUSH_BATCH pages */

static double run_clflush(long n)
{
	double t = 0;
	for (long done = 0; done < n;) {
		long k = n - done < FLUSH_BATCH ? n - done : FLUSH_BATCH;
		memset(flush_area, (int)done, (size_t)(k * PAGE)); /* dirty and cached */
		_mm_mfence();
		double t0 = now_ns();
		for (long p = 0; p < k; p++) {
			for (long l = 0; l < PAGE; l += 64)
				_mm_clflush(flush_area + p * PAGE + l);
			_mm_mfence();
		}
		t += now_ns() - t0;
		done += k;
	}
	return t;
}
#endif

/* ---- memcpy of a warm page ---- */

static char *copy_src, *copy_dst;

static double run_memcpy(long n)
{
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		memcpy(copy_dst, copy_src, PAGE);
		/* the copy is observable: the compiler may neither drop nor merge it */
		__asm__ volatile("" : : "r"(copy_dst), "r"(copy_src) : "memory");
	}
	return now_ns() - t0;
}

/* ---- pwrite + pread of a page with O_DIRECT: to the disk, as swap I/O goes ---- */

static int io_fd = -1;
static char *io_buf;

static double run_io(long n)
{
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		off_t off = (off_t)(i % IO_SLOTS) * PAGE;
		io_buf[0] = (char)i;
		if (pwrite(io_fd, io_buf, PAGE, off) != PAGE)
			return -1;
		if (pread(io_fd, io_buf, PAGE, off) != PAGE)
			return -1;
	}
	return now_ns() - t0;
}

/* ---- driver ---- */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void unavailable(const char *why, const char *detail)
{
	printf("{\"unavailable\":");
	char buf[256];
	snprintf(buf, sizeof buf, "%s: %s", why, detail);
	json_str(buf);
	putchar('}');
}

/* Run one measurement REPS times and print its JSON value. */
static void measure(const struct probe *pr, long reps)
{
	/* warm-up and N search: double N until one batch takes WARMUP_NS */
	long n = 1;
	double t;
	for (;;) {
		t = pr->run(n);
		if (t < 0)
			goto fail;
		if (t >= WARMUP_NS || n >= (1L << 40))
			break;
		n *= t * 16 < WARMUP_NS ? 16 : 2;
	}
	/*
	 * Scale N to TARGET_NS. Noise (a preempted vCPU) only ever makes a batch
	 * slower, so N is only trusted once a batch of it has taken at least most
	 * of the target; a batch that was too quick scales N up and runs again.
	 */
	for (int tries = 0; tries < 4; tries++) {
		double want = (double)n * TARGET_NS / (t > 1 ? t : 1);
		n = want < 1 ? 1 : want > 1e15 ? (long)1e15 : (long)want;
		t = pr->run(n);
		if (t < 0)
			goto fail;
		if (t >= 0.8 * TARGET_NS)
			break;
	}

	double samples[MAX_REPS];
	for (long r = 0; r < reps; r++) {
		t = pr->run(n);
		if (t < 0)
			goto fail;
		samples[r] = t / (double)n;
	}
	printf("{\"samples_ns\":[");
	for (long r = 0; r < reps; r++)
		printf("%s%.3f", r ? "," : "", samples[r]);
	printf("],\"iterations\":%ld,\"what\":", n);
	json_str(pr->what);
	putchar('}');
	return;
fail:
	unavailable(pr->failing, strerror(errno));
}

static void *map_anon(long pages, int nohuge)
{
	void *p = mmap(NULL, (size_t)(pages * PAGE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("probe: mmap");
		exit(1);
	}
	if (nohuge)
		madvise(p, (size_t)(pages * PAGE), MADV_NOHUGEPAGE);
	memset(p, 1, (size_t)(pages * PAGE));
	return p;
}

int main(int argc, char **argv)
{
	char *end;
	long reps = argc == 3 ? strtol(argv[1], &end, 10) : 0;
	if (argc != 3 || *end != '\0' || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "usage: probe REPS IOFILE  (1 <= REPS <= %ld)\n", MAX_REPS);
		return 2;
	}

	mp_area = map_anon(3, 0);
	zap_area = map_anon(ZAP_BATCH * ZAP_PAGES, 1);
	copy_src = map_anon(1, 0);
	copy_dst = map_anon(1, 0);
	io_buf = map_anon(1, 0);
#if defined(__x86_64__)
	flush_area = map_anon(FLUSH_BATCH, 0);
#endif
	struct rlimit rl;
	secret_chunk = FAULT_CHUNK;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)secret_chunk * PAGE > rl.rlim_cur / 2)
		secret_chunk = (long)(rl.rlim_cur / 2 / PAGE);
	int io_errno = 0;
	/* Swap I/O bypasses the page cache: O_DIRECT (io_buf is page-aligned).
	 * A filesystem without O_DIRECT (tmpfs) gets buffered I/O, and says so. */
	const char *io_what = "pwrite then pread of 4 KiB, O_DIRECT, at a page-aligned file offset";
	io_fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0600);
	if (io_fd < 0 && errno == EINVAL) {
		io_what = "pwrite then pread of 4 KiB through the page cache (no O_DIRECT here)";
		io_fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	}
	if (io_fd < 0)
		io_errno = errno;
	else
		unlink(argv[2]);

	const struct probe probes[] = {
		{ "getppid", "one getppid syscall", "getppid", run_getppid },
		{ "enosys", "one syscall the kernel does not have (nr 1023, ENOSYS)", "syscall 1023", run_enosys },
		{ "mprotect_split_merge", "mprotect of the middle of 3 pages to R then back to RW (split+merge)", "mprotect", run_mprotect },
		{ "madvise_dontneed_64", "one madvise(MADV_DONTNEED) over 64 present pages", "madvise", run_madvise },
		{ "anon_fault", "first-touch write fault of one anonymous page (THP off)", "anon mmap", run_anon_fault },
#if defined(MEMFD_SECRET_NR)
		{ "memfd_secret_fault", "first-touch write fault of one memfd_secret page", "memfd_secret", run_secret_fault },
#else
		{ "memfd_secret_fault", "", "memfd_secret", NULL },
#endif
#if defined(__x86_64__)
		{ "clflush_page", "clflush of the 64 lines of a dirty cached 4 KiB page, then mfence", "clflush", run_clflush },
#else
		{ "clflush_page", "", "clflush", NULL },
#endif
		{ "memcpy_page", "one 4 KiB memcpy between two warm buffers", "memcpy", run_memcpy },
		{ "pwrite_pread_page", io_what, "pwrite/pread", run_io },
	};

	printf("{\"probe\":1,\"reps\":%ld,\"results\":{", reps);
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		const struct probe *pr = &probes[i];
		printf("%s", i ? "," : "");
		json_str(pr->name);
		putchar(':');
		if (pr->run == NULL)
			unavailable(pr->failing, "not on this architecture");
		else if (pr->run == run_io && io_fd < 0)
			unavailable("open", strerror(io_errno));
		else
			measure(pr, reps);
		fflush(stdout);
	}
	printf("}}\n");
	return 0;
}
