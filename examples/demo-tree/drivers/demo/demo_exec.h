/* SPDX-License-Identifier: GPL-2.0 */
/*
 * demo: executable buffer allocator for the demo accelerator.
 * Buffers must live inside a small window the device can address, so they
 * come from a dedicated part of the module area, not from all of vmalloc.
 */
#ifndef _DEMO_EXEC_H
#define _DEMO_EXEC_H

/* 64 MiB window, just above the module text. */
#define DEMO_EXEC_START		(MODULES_VADDR + 512 * SZ_1M)
#define DEMO_EXEC_END		(DEMO_EXEC_START + 64 * SZ_1M)

/* Firmware must never fail to load once probing has started. */
#define DEMO_FW_GFP		(GFP_KERNEL | __GFP_NOFAIL)

struct demo_fw {
	const char	*name;
	void		*image;
	unsigned long	size;
};

void *demo_exec_alloc(unsigned long size, gfp_t gfp);
void demo_exec_free(void *addr);

#endif /* _DEMO_EXEC_H */
