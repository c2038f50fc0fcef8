// SPDX-License-Identifier: GPL-2.0
/*
 * demo: core probe path.
 *
 * demo_load_firmware() asks demo_exec_alloc() (demo_exec.c) for a buffer in
 * the device window with DEMO_FW_GFP, which carries __GFP_NOFAIL: NF001.
 * The trampoline and ring allocations are fine: one may fail and is checked,
 * the other uses kvzalloc(), which honours __GFP_NOFAIL on the whole space.
 */
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/module.h>
#include "demo_exec.h"

struct demo_device {
	struct demo_fw	fw;
	void		*trampoline;
	u64		*ring;
	unsigned int	ring_entries;
};

int demo_load_firmware(struct demo_device *ddev, const char *name,
		       unsigned long size)
{
	ddev->fw.name = name;
	ddev->fw.size = size;
	ddev->fw.image = demo_exec_alloc(size, DEMO_FW_GFP); /* expect: NF001 */
	return 0;
}

int demo_load_trampoline(struct demo_device *ddev)
{
	ddev->trampoline = demo_exec_alloc(PAGE_SIZE, GFP_KERNEL);
	if (!ddev->trampoline)
		return -ENOMEM;
	return 0;
}

int demo_alloc_ring(struct demo_device *ddev, unsigned int entries)
{
	ddev->ring = kvzalloc(entries * sizeof(u64), GFP_KERNEL | __GFP_NOFAIL);
	ddev->ring_entries = entries;
	return 0;
}

void demo_release(struct demo_device *ddev)
{
	demo_exec_free(ddev->trampoline);
	demo_exec_free(ddev->fw.image);
	kvfree(ddev->ring);
}

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nofail-lint demo driver");
