// SPDX-License-Identifier: GPL-2.0
/*
 * demo: executable buffers in the device window.
 *
 * demo_exec_alloc() forwards the caller's gfp to __vmalloc_node_range() with
 * a window that is not VMALLOC_START..VMALLOC_END, so a __GFP_NOFAIL caller
 * can spin forever once the window is full (see demo_core.c).
 */
#include <linux/vmalloc.h>
#include <linux/module.h>
#include "demo_exec.h"

void *demo_exec_alloc(unsigned long size, gfp_t gfp)
{
	return __vmalloc_node_range(size, PAGE_SIZE, DEMO_EXEC_START,
				    DEMO_EXEC_END, gfp, PAGE_KERNEL_EXEC,
				    VM_FLUSH_RESET_PERMS, NUMA_NO_NODE,
				    __builtin_return_address(0));
}
EXPORT_SYMBOL_GPL(demo_exec_alloc);

void demo_exec_free(void *addr)
{
	vfree(addr);
}
EXPORT_SYMBOL_GPL(demo_exec_free);

/* Scratch area for the JIT; its own window, NOFAIL passed directly. */
void *demo_exec_scratch_alloc(unsigned long size)
{
	return __vmalloc_node_range(size, PAGE_SIZE, DEMO_EXEC_START, /* expect: NF001 */
				    DEMO_EXEC_END, GFP_KERNEL | __GFP_NOFAIL,
				    PAGE_KERNEL, 0, NUMA_NO_NODE,
				    __builtin_return_address(0));
}
