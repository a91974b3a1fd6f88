/*
 * Loads a guest image (a static, non-PIE x86-64 ELF linked at VSP_IMAGE_BASE) into guest memory and
 * builds the Linux-style initial stack musl's _start expects. The image comes from the runner's
 * own build, but is still checked like untrusted input: every segment must fit the user area.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm.h"

#define MAX_IMAGE_SIZE (64ull << 20)

static uint64_t page_up(uint64_t v)
{
	return (v + VSP_PAGE_SIZE - 1) & ~(VSP_PAGE_SIZE - 1);
}

/*
 * Images are parsed once and kept in memory as their loaded form, [VSP_IMAGE_BASE, end), shared by
 * every VM and snapshot that uses them (snapshots store only the pages that differ from it).
 * Keyed by path and file identity, so a rebuilt image is a new entry.
 */
static pthread_mutex_t images_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vsp_image *images;

static int parse(struct vsp_image *img, const uint8_t *file, uint64_t size)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return -ENOEXEC;

	const Elf64_Phdr *ph = (const Elf64_Phdr *)(file + eh->e_phoff);
	uint64_t end = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > size || p->p_filesz > size - p->p_offset ||
		    p->p_vaddr < VSP_IMAGE_BASE || p->p_vaddr > MAX_IMAGE_SIZE ||
		    p->p_memsz > MAX_IMAGE_SIZE - p->p_vaddr)
			return -ENOEXEC;
		if (p->p_vaddr + p->p_memsz > end)
			end = p->p_vaddr + p->p_memsz;
		if (img->nsegs == sizeof(img->segs) / sizeof(img->segs[0]))
			return -ENOEXEC;
		img->segs[img->nsegs].start = p->p_vaddr;
		img->segs[img->nsegs].end = p->p_vaddr + p->p_memsz;
		img->segs[img->nsegs++].flags = p->p_flags;
		/* musl finds its TLS template through AT_PHDR: the headers' address once loaded. */
		if (eh->e_phoff >= p->p_offset && eh->e_phoff - p->p_offset < p->p_filesz)
			img->phdr = p->p_vaddr + (eh->e_phoff - p->p_offset);
	}
	if (end == 0 || img->phdr == 0 || eh->e_entry < VSP_IMAGE_BASE || eh->e_entry >= end ||
	    end > VSP_IMAGE_BASE + (uint64_t)VSP_IMAGE_PTS_MAX * VSP_HUGE_PAGE_SIZE)
		return -ENOEXEC; /* also: larger than the 4 KiB page tables a virtine has for its image */
	img->end = page_up(end);
	img->bytes = calloc(1, img->end - VSP_IMAGE_BASE); /* bss stays zero */
	if (!img->bytes)
		return -ENOMEM;
	for (unsigned i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memcpy(img->bytes + (ph[i].p_vaddr - VSP_IMAGE_BASE), file + ph[i].p_offset, ph[i].p_filesz);
	img->entry = eh->e_entry;
	img->phnum = eh->e_phnum;
	return 0;
}

static int load_image(const char *path, const struct stat *st, struct vsp_image **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	void *file = mmap(NULL, st->st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED)
		return -errno;
	struct vsp_image *img = calloc(1, sizeof(*img));
	int r = img ? parse(img, file, st->st_size) : -ENOMEM;
	munmap(file, st->st_size);
	if (r == 0 && !(img->path = strdup(path)))
		r = -ENOMEM;
	if (r < 0) {
		if (img)
			free(img->bytes);
		free(img);
		return r;
	}
	img->dev = st->st_dev;
	img->ino = st->st_ino;
	img->mtime = st->st_mtim;
	img->size = st->st_size;
	*out = img;
	return 0;
}

static bool same_file(const struct vsp_image *img, const char *path, const struct stat *st)
{
	return img->dev == st->st_dev && img->ino == st->st_ino && img->size == st->st_size &&
	       img->mtime.tv_sec == st->st_mtim.tv_sec && img->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       strcmp(img->path, path) == 0;
}

int vsp_image_get(const char *path, struct vsp_image **out)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || (uint64_t)st.st_size > MAX_IMAGE_SIZE)
		return -ENOEXEC;
	pthread_mutex_lock(&images_lock);
	for (struct vsp_image *img = images; img; img = img->next)
		if (same_file(img, path, &st)) {
			img->refs++;
			pthread_mutex_unlock(&images_lock);
			*out = img;
			return 0;
		}
	pthread_mutex_unlock(&images_lock);

	struct vsp_image *img = NULL;
	int r = load_image(path, &st, &img);
	if (r < 0)
		return r;
	img->refs = 1;
	pthread_mutex_lock(&images_lock);
	img->next = images;
	images = img;
	pthread_mutex_unlock(&images_lock);
	*out = img;
	return 0;
}

struct vsp_image *vsp_image_ref(struct vsp_image *img)
{
	pthread_mutex_lock(&images_lock);
	img->refs++;
	pthread_mutex_unlock(&images_lock);
	return img;
}

void vsp_image_put(struct vsp_image *img)
{
	if (!img)
		return;
	pthread_mutex_lock(&images_lock);
	bool last = --img->refs == 0;
	if (last)
		for (struct vsp_image **link = &images; *link; link = &(*link)->next)
			if (*link == img) {
				*link = img->next;
				break;
			}
	pthread_mutex_unlock(&images_lock);
	if (last) {
		free(img->bytes);
		free(img->path);
		free(img);
	}
}

uint32_t vsp_image_page_flags(const struct vsp_image *img, uint64_t addr)
{
	uint32_t flags = 0;
	for (unsigned i = 0; i < img->nsegs; i++)
		if (img->segs[i].start < addr + VSP_PAGE_SIZE && img->segs[i].end > addr)
			flags |= img->segs[i].flags;
	return flags;
}

int vsp_elf_load(struct vsp_vm *vm, struct vsp_image *img)
{
	if (img->end > vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE)
		return -ENOMEM; /* the image alone does not fit this memory size */
	memcpy(vm->mem + VSP_IMAGE_BASE, img->bytes, img->end - VSP_IMAGE_BASE);
	vm->image = vsp_image_ref(img);
	return 0;
}

/* argc, argv, envp and auxv at the top of the stack, as the Linux ABI lays them out. */
int vsp_stack_init(struct vsp_vm *vm, uint64_t entry, uint64_t phdr, uint64_t phnum, uint64_t *rsp)
{
	uint64_t top = vm->mem_size;
	uint64_t sp = top;

	static const char argv0[] = "vespid";
	sp -= sizeof(argv0);
	uint64_t argv0_addr = sp;
	memcpy(vm->mem + sp, argv0, sizeof(argv0));

	sp -= 16;
	uint64_t random_addr = sp;
	if (getrandom(vm->mem + sp, 16, 0) != 16)
		return -EIO;

	sp &= ~15ull;
	const uint64_t auxv[][2] = {
		{ AT_PHDR, phdr }, { AT_PHENT, sizeof(Elf64_Phdr) }, { AT_PHNUM, phnum },
		{ AT_PAGESZ, VSP_PAGE_SIZE }, { AT_ENTRY, entry }, { AT_RANDOM, random_addr },
		{ AT_UID, 1000 }, { AT_EUID, 1000 }, { AT_GID, 1000 }, { AT_EGID, 1000 },
		{ AT_SECURE, 0 }, { AT_NULL, 0 },
	};
	const uint64_t nwords = 1 /* argc */ + 2 /* argv, NULL */ + 1 /* envp NULL */ +
				sizeof(auxv) / sizeof(uint64_t);
	sp -= nwords * 8;
	sp &= ~15ull; /* rsp is 16-byte aligned at argc */
	uint64_t *w = (uint64_t *)(vm->mem + sp);
	*w++ = 1;
	*w++ = argv0_addr;
	*w++ = 0;
	*w++ = 0;
	memcpy(w, auxv, sizeof(auxv));
	*rsp = sp;
	return 0;
}
