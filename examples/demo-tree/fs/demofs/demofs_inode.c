// SPDX-License-Identifier: GPL-2.0
/*
 * demofs: inode cache and block map.
 *
 * demofs_icache_insert() retries radix_tree_preload() on -ENOMEM forever,
 * and demofs_bmap_page() jumps back to its allocation until it succeeds:
 * both NF002. demofs_fill_super() and demofs_read_block() are clean: one
 * uses DKM_MAYFAIL and checks for NULL, the other gives up on a fatal signal.
 */
#include <linux/slab.h>
#include <linux/radix-tree.h>
#include <linux/sched.h>
#include "demofs_kmem.h"

struct demofs_sb_info {
	struct radix_tree_root	icache;
	unsigned long		nr_inodes;
};

struct demofs_inode {
	unsigned long	ino;
	struct page	*bmap;
};

int demofs_icache_insert(struct demofs_sb_info *sbi, struct demofs_inode *di)
{
	int err;

	do {
		err = radix_tree_preload(GFP_NOFS); /* expect: NF002 */
		if (err == -ENOMEM)
			memalloc_retry_wait(GFP_NOFS);
	} while (err == -ENOMEM);
	if (err)
		return err;
	err = radix_tree_insert(&sbi->icache, di->ino, di);
	radix_tree_preload_end();
	if (!err)
		sbi->nr_inodes++;
	return err;
}

struct page *demofs_bmap_page(struct demofs_inode *di)
{
	struct page *page;

retry:
	page = alloc_page(GFP_NOFS | __GFP_ZERO); /* expect: NF002 */
	if (!page) {
		memalloc_retry_wait(GFP_NOFS);
		goto retry;
	}
	di->bmap = page;
	return page;
}

int demofs_fill_super(struct super_block *sb)
{
	struct demofs_sb_info *sbi;

	sbi = demofs_kmem_zalloc(sizeof(*sbi), DKM_NOFS | DKM_MAYFAIL);
	if (!sbi)
		return -ENOMEM;
	sb->s_fs_info = sbi;
	return 0;
}

void *demofs_read_block(struct super_block *sb, unsigned long blk)
{
	void *buf;

	for (;;) {
		buf = kmalloc(sb->s_blocksize, GFP_NOFS);
		if (buf)
			return buf;
		if (fatal_signal_pending(current))
			return NULL;
		memalloc_retry_wait(GFP_NOFS);
	}
}
