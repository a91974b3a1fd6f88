/*
 * Loads a guest image (a static, non-PIE x86-64 ELF linked at VSP_IMAGE_BASE) into guest memory and
 * builds the Linux-style initial stack musl's _start expects. The image comes from the runner's
 * own build, but is still checked like untrusted input: every segment must fit the user area.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
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

static int load_segments(struct vsp_vm *vm, const uint8_t *file, uint64_t size, uint64_t *entry,
			 uint64_t *image_end, uint64_t *phdr_addr, uint64_t *phnum)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)file;
	uint64_t user_end = vm->mem_size - VSP_STACK_SIZE - VSP_GUARD_SIZE;

	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 || eh->e_type != ET_EXEC ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return -ENOEXEC;

	const Elf64_Phdr *ph = (const Elf64_Phdr *)(file + eh->e_phoff);
	uint64_t end = 0;
	*phdr_addr = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_type != PT_LOAD)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > size || p->p_filesz > size - p->p_offset ||
		    p->p_vaddr < VSP_IMAGE_BASE || p->p_vaddr > user_end || p->p_memsz > user_end - p->p_vaddr)
			return -ENOEXEC;
		memcpy(vm->mem + p->p_vaddr, file + p->p_offset, p->p_filesz);
		/* Memory is fresh from mmap, so the bss part is already zero. */
		if (p->p_vaddr + p->p_memsz > end)
			end = p->p_vaddr + p->p_memsz;
		/* musl finds its TLS template through AT_PHDR: the headers' address once loaded. */
		if (eh->e_phoff >= p->p_offset && eh->e_phoff - p->p_offset < p->p_filesz)
			*phdr_addr = p->p_vaddr + (eh->e_phoff - p->p_offset);
	}
	if (end == 0 || *phdr_addr == 0 || eh->e_entry < VSP_IMAGE_BASE || eh->e_entry >= end)
		return -ENOEXEC;
	*entry = eh->e_entry;
	*image_end = page_up(end);
	*phnum = eh->e_phnum;
	return 0;
}

int vsp_elf_load(struct vsp_vm *vm, const char *path, uint64_t *entry, uint64_t *image_end,
		 uint64_t *phdr, uint64_t *phnum)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > MAX_IMAGE_SIZE) {
		close(fd);
		return -ENOEXEC;
	}
	void *file = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file == MAP_FAILED)
		return -errno;
	int r = load_segments(vm, file, st.st_size, entry, image_end, phdr, phnum);
	munmap(file, st.st_size);
	return r;
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
