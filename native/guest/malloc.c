/*
 * The guest's allocator, replacing musl's. musl's mallocng maps and unmaps small groups with
 * mmap/munmap as objects come and go; in a virtine each of those is an exit to the host (~60 µs
 * on kvm_pvm), and a snapshot-restored VM repeats them on every call. This one takes memory from
 * brk in large steps and recycles freed blocks through per-size free lists, so a warm call makes
 * no syscalls at all. Guests are single-threaded: no locking.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ALIGN 16
#define PAGE 4096
#define page_up(n) (((n) + PAGE - 1) & ~(size_t)(PAGE - 1))
#define HEADER 16                 /* keeps payloads 16-byte aligned */
#define SMALL_STEP 16
#define SMALL_MAX 256             /* classes 16, 32, … 256 */
#define LARGE_MAX (64 * 1024)     /* then powers of two up to this; above it, mmap */
#define NCLASSES (SMALL_MAX / SMALL_STEP + 8)
#define GROW (1024 * 1024)        /* brk grows by at least this much at a time */
#define MMAPPED ((size_t)-1)      /* class value of a block that owns its own mapping */

struct header {
	size_t class;             /* size class, or MMAPPED */
	size_t size;              /* usable bytes */
};

static void *free_lists[NCLASSES];
static char *arena_next, *arena_end;

static size_t class_of(size_t n, size_t *size)
{
	if (n <= SMALL_MAX) {
		size_t c = n ? (n + SMALL_STEP - 1) / SMALL_STEP - 1 : 0;
		*size = (c + 1) * SMALL_STEP;
		return c;
	}
	size_t c = SMALL_MAX / SMALL_STEP, s = 512;
	while (s < n) {
		s <<= 1;
		c++;
	}
	*size = s;
	return c;
}

/* The brk syscall itself (musl's sbrk only reads the break): returns the break after the call. */
static char *set_break(char *addr)
{
	return (char *)syscall(SYS_brk, addr);
}

/* Carves `bytes` from the arena, growing the break when needed. */
static void *carve(size_t bytes)
{
	if ((size_t)(arena_end - arena_next) < bytes) {
		size_t grow = bytes > GROW ? (bytes + GROW - 1) / GROW * GROW : GROW;
		char *cur = set_break(0);
		if (cur != arena_end)  /* someone else moved the break: start a new arena there */
			arena_next = cur;
		if (set_break(cur + grow) != cur + grow)
			return NULL;
		arena_end = cur + grow;
		if ((size_t)(arena_end - arena_next) < bytes)
			return NULL;
	}
	void *p = arena_next;
	arena_next += bytes;
	return p;
}

/*
 * A block with a mapping of its own, its payload `offset` bytes (HEADER ≤ offset ≤ PAGE, so the
 * header lies in the mapping's first page) past the start: free() finds the start by rounding down.
 */
static void *map_block(size_t n, size_t offset)
{
	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	size_t total = page_up(n + offset);
	char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	struct header *h = (struct header *)(base + offset - HEADER);
	h->class = MMAPPED;
	h->size = total - offset;
	return base + offset;
}

void *malloc(size_t n)
{
	if (n > LARGE_MAX)
		return map_block(n, HEADER);
	size_t size, c = class_of(n, &size);
	struct header *h;
	if (free_lists[c]) {
		h = (struct header *)((char *)free_lists[c] - HEADER);
		free_lists[c] = *(void **)free_lists[c];
	} else {
		h = carve(HEADER + size);
		if (!h) {
			errno = ENOMEM;
			return NULL;
		}
		h->class = c;
		h->size = size;
	}
	return (char *)h + HEADER;
}

void free(void *p)
{
	if (!p)
		return;
	struct header *h = (struct header *)((char *)p - HEADER);
	if (h->class == MMAPPED) {
		char *base = (char *)((uintptr_t)h & ~(uintptr_t)(PAGE - 1));
		munmap(base, page_up((size_t)((char *)p - base) + h->size));
		return;
	}
	*(void **)p = free_lists[h->class];
	free_lists[h->class] = p;
}

void *calloc(size_t n, size_t m)
{
	if (m && n > SIZE_MAX / m) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = malloc(n * m);
	if (p)
		memset(p, 0, n * m);
	return p;
}

void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	size_t have = ((struct header *)((char *)p - HEADER))->size;
	if (n <= have && (n > have / 2 || have <= SMALL_MAX))
		return p;
	void *q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, n < have ? n : have);
	free(p);
	return q;
}

size_t malloc_usable_size(void *p)
{
	return p ? ((struct header *)((char *)p - HEADER))->size : 0;
}

/* Alignments up to 16 come from malloc; larger ones (rare) from a mapping of their own. */
void *aligned_alloc(size_t align, size_t n)
{
	if (align <= ALIGN)
		return malloc(n);
	if (align > PAGE || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return map_block(n, align); /* page-aligned base + align: aligned, header in the first page */
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = aligned_alloc(align, n);
	if (!p)
		return errno;
	*out = p;
	return 0;
}

void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}
