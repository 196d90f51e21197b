// The VMA layer on its own (like Linux's tools/testing/vma).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import { DEFAULT_MAX_MAP_COUNT } from '../../kernel/uapi.js';
import { VM_READ, VM_WRITE, Vma, VmaList, type VmaKeyRef } from '../../kernel/vma.js';

const P = 4096;
const anon = (s: number, e: number, f = VM_READ | VM_WRITE) => new Vma(s * P, e * P, f, s, null);
const key = (keyid: number): VmaKeyRef & { refs: number } => ({
  keyid,
  refs: 1,
  get() {
    this.refs++;
  },
  put() {
    this.refs--;
  },
});
const layout = (l: VmaList) => l.vmas.map((v) => `${v.start / P}-${v.end / P}:${v.flags}:${v.keyid}`);

describe('VmaList', () => {
  it('merges adjacent compatible anonymous VMAs on insert, not incompatible ones', () => {
    const l = new VmaList(100);
    l.insert(anon(0, 2));
    l.insert(anon(2, 4));
    assert.deepEqual(layout(l), ['0-4:3:0']);
    l.insert(anon(4, 5, VM_READ));
    l.insert(anon(6, 7));
    assert.deepEqual(layout(l), ['0-4:3:0', '4-5:1:0', '6-7:3:0']);
    assert.equal(l.find(4 * P)?.end, 5 * P);
    assert.equal(l.find(5 * P), null);
    assert.equal(l.intersection(5 * P, 6 * P), null);
    assert.equal(l.intersection(5 * P, 7 * P)?.start, 6 * P);
  });

  it('never merges VMAs with different KeyIDs, and keeps key references balanced', () => {
    const l = new VmaList(100);
    const k1 = key(1);
    const k2 = key(2);
    const a = anon(0, 2);
    a.key = k1;
    k1.get();
    const b = anon(2, 4);
    b.key = k2;
    k2.get();
    l.insert(a);
    l.insert(b);
    assert.deepEqual(layout(l), ['0-2:3:1', '2-4:3:2']);
    const c = anon(4, 6);
    c.key = k2;
    k2.get();
    l.insert(c); // same key: merges, the absorbed VMA's reference is dropped
    assert.deepEqual(layout(l), ['0-2:3:1', '2-6:3:2']);
    assert.equal(k2.refs, 2);
    // a split takes a reference for the new part
    assert.equal(l.split(1, 3 * P), 0);
    assert.equal(k2.refs, 3);
    assert.deepEqual(layout(l), ['0-2:3:1', '2-3:3:2', '3-6:3:2']);
    assert.equal(l.vmas[2].pgoff, 3);
  });

  it('modify splits, changes and re-merges a range', () => {
    const l = new VmaList(100);
    l.insert(anon(0, 10));
    const i = l.modify(0, 3 * P, 5 * P, (v) => (v.flags = VM_READ));
    assert.equal(i, 1);
    assert.deepEqual(layout(l), ['0-3:3:0', '3-5:1:0', '5-10:3:0']);
    l.modify(1, 3 * P, 5 * P, (v) => (v.flags = VM_READ | VM_WRITE));
    assert.deepEqual(layout(l), ['0-10:3:0']);
  });

  it('detach splits at the edges and returns the parts', () => {
    const l = new VmaList(100);
    l.insert(anon(0, 4));
    l.insert(anon(5, 9));
    const d = l.detach(2 * P, 7 * P);
    assert.ok(Array.isArray(d));
    assert.deepEqual(
      (d as Vma[]).map((v) => [v.start / P, v.end / P]),
      [
        [2, 4],
        [5, 7],
      ],
    );
    assert.deepEqual(layout(l), ['0-2:3:0', '7-9:3:0']);
    assert.deepEqual(l.detach(20 * P, 30 * P), []);
  });

  it(`stops at max_map_count (default ${DEFAULT_MAX_MAP_COUNT}) with ENOMEM`, () => {
    const l = new VmaList(DEFAULT_MAX_MAP_COUNT);
    l.insert(anon(0, DEFAULT_MAX_MAP_COUNT + 10));
    // split off one page at a time from the end, alternating flags so nothing merges back
    let i = 0;
    let r = 0;
    for (let page = 1; ; page++) {
      r = l.modify(i, (page - 1) * P, page * P, (v) => (v.flags = page % 2 ? VM_READ : VM_READ | VM_WRITE | 0x4));
      if (r < 0) break;
      i = r + 1;
    }
    assert.equal(r, -E.ENOMEM);
    assert.equal(l.mapCount, DEFAULT_MAX_MAP_COUNT);
    // munmap in the middle of a VMA at the limit: ENOMEM, nothing changed
    const last = l.vmas[l.mapCount - 1];
    assert.equal(l.detach(last.start + P, last.start + 2 * P), -E.ENOMEM);
    assert.equal(l.mapCount, DEFAULT_MAX_MAP_COUNT);
    // munmap of a whole VMA needs no split and works
    const d = l.detach(l.vmas[0].start, l.vmas[0].end);
    assert.ok(Array.isArray(d) && d.length === 1);
  });

  it('prints /proc/pid/maps lines', () => {
    const v = anon(0x200000, 0x200003);
    assert.equal(v.mapsLine(), '200000000-200003000 rw-p 00000000 00:00 0 ');
  });
});
