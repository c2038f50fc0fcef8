// SPDX-License-Identifier: GPL-2.0
/*
 * demofs: kmem helpers.
 *
 * demofs_kmem_alloc() loops until kmalloc() succeeds unless the caller
 * passed DKM_MAYFAIL: an open-coded __GFP_NOFAIL (NF002). The retry counter
 * only rate-limits a warning, it never ends the loop.
 */
#include <linux/slab.h>
#include <linux/printk.h>
#include "demofs_kmem.h"

static gfp_t demofs_kmem_gfp(unsigned int flags)
{
	gfp_t gfp = GFP_KERNEL | __GFP_NOWARN;

	if (flags & DKM_NOFS)
		gfp &= ~__GFP_FS;
	if (flags & DKM_MAYFAIL)
		gfp |= __GFP_RETRY_MAYFAIL;
	if (flags & DKM_ZERO)
		gfp |= __GFP_ZERO;
	return gfp;
}

void *demofs_kmem_alloc(size_t size, unsigned int flags)
{
	gfp_t gfp = demofs_kmem_gfp(flags);
	unsigned int retries = 0;
	void *ptr;

	do {
		ptr = kmalloc(size, gfp); /* expect: NF002 */
		if (ptr || (flags & DKM_MAYFAIL))
			return ptr;
		if (!(++retries % 100))
			pr_err("demofs: possible memory allocation deadlock, size %zu, mode 0x%x\n",
			       size, gfp);
		memalloc_retry_wait(gfp);
	} while (1);
}

void *demofs_kmem_zalloc(size_t size, unsigned int flags)
{
	return demofs_kmem_alloc(size, flags | DKM_ZERO);
}

void demofs_kmem_free(const void *ptr)
{
	kfree(ptr);
}
