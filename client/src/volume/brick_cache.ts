// Bricks kept in the page: least recently used out past a byte budget.
// Pure (no socket, no DOM): client/test/brick_cache.test.ts checks it.

/** A brick's voxels (x fastest), or null where the layer has none; uint64
 *  layers' as BigUint64Array (segment ids above 2^53 stay exact). */
export type BrickData = Uint8Array | Uint16Array | Uint32Array | BigUint64Array | null

export class BrickCache {
  private readonly entries = new Map<string, BrickData>() // insertion order = recency
  private bytes = 0

  constructor(readonly budgetBytes: number) {}

  get size(): number {
    return this.entries.size
  }

  get cachedBytes(): number {
    return this.bytes
  }

  has(key: string): boolean {
    return this.entries.has(key)
  }

  /** The brick, made the most recently used; undefined when not cached. */
  get(key: string): BrickData | undefined {
    const data = this.entries.get(key)
    if (data !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, data)
    }
    return data
  }

  /** Keep a brick (null: known to be empty or missing); the least recently used go past the budget. */
  set(key: string, data: BrickData): void {
    const old = this.entries.get(key)
    if (old !== undefined) {
      this.entries.delete(key)
      this.bytes -= old?.byteLength ?? 0
    }
    this.entries.set(key, data)
    this.bytes += data?.byteLength ?? 0
    while (this.bytes > this.budgetBytes && this.entries.size > 1) {
      const [oldest, gone] = this.entries.entries().next().value as [string, BrickData]
      this.entries.delete(oldest)
      this.bytes -= gone?.byteLength ?? 0
    }
  }

  /** Forget a brick (asked for again when a view wants it). */
  delete(key: string): void {
    const old = this.entries.get(key)
    if (old === undefined) return
    this.entries.delete(key)
    this.bytes -= old?.byteLength ?? 0
  }

  clear(): void {
    this.entries.clear()
    this.bytes = 0
  }
}

/** A brick's key in a layer's cache: its mag's name and its coordinates at that mag. */
export function brickKey(magName: string, brick: readonly number[]): string {
  return `${magName}/${brick[0]}/${brick[1]}/${brick[2]}`
}
