/* SPDX-License-Identifier: GPL-2.0 */
/*
 * demofs: kmem allocation helpers with their own flag set.
 * Without DKM_MAYFAIL the helpers never return NULL.
 */
#ifndef _DEMOFS_KMEM_H
#define _DEMOFS_KMEM_H

#define DKM_NOFS	0x0004u
#define DKM_MAYFAIL	0x0008u
#define DKM_ZERO	0x0010u

void *demofs_kmem_alloc(size_t size, unsigned int flags);
void *demofs_kmem_zalloc(size_t size, unsigned int flags);
void demofs_kmem_free(const void *ptr);

#endif /* _DEMOFS_KMEM_H */
