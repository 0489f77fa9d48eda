// New segment ids (WEBKNOSSOS's C) from blocks the server hands out (POST
// /api/annotations/{id}/segment-ids): ids of one block are this page's
// alone, so two people pressing C at once never get the same id. One block
// is kept ahead, so C answers at once (and a while offline). Pure apart
// from the fetch it is given: client/test/segmentation.test.ts.

export interface Block {
  first: number
  count: number
}

export class IdBlocks {
  /** Blocks of ids not handed out yet, the next id first. */
  private blocks: Block[] = []
  private fetching: Promise<void> | null = null
  /** The last refill failed (offline, refused): said on the page. */
  error: string | null = null
  onChange: () => void = () => undefined

  /** ``fetchBlock``: asks the server for ``size`` new ids. */
  constructor(
    private readonly fetchBlock: (size: number) => Promise<Block>,
    readonly size = 16,
  ) {}

  /** Ids left in hand. */
  get available(): number {
    return this.blocks.reduce((sum, b) => sum + b.count, 0)
  }

  /** Ids this page already owns and never used (from the document's idBlocks). */
  seed(blocks: Block[]): void {
    for (const b of blocks) if (b.count > 0) this.blocks.push({ ...b })
    this.blocks.sort((a, b) => a.first - b.first)
  }

  /** The next id, or null when none is in hand (a refill is under way). */
  take(): number | null {
    const block = this.blocks[0]
    let id: number | null = null
    if (block) {
      id = block.first
      block.first += 1
      block.count -= 1
      if (block.count === 0) this.blocks.shift()
    }
    void this.refill()
    return id
  }

  /** The next id, waiting for a block when none is in hand. */
  async next(): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const id = this.take()
      if (id !== null) return id
      await this.refill()
    }
    throw new Error(this.error ?? 'no segment ids')
  }

  /** Keep more than a block's worth in hand: one block ahead of the one in use. */
  refill(): Promise<void> {
    if (this.fetching) return this.fetching
    if (this.available > this.size) return Promise.resolve()
    this.fetching = (async () => {
      try {
        while (this.available <= this.size) {
          const block = await this.fetchBlock(this.size)
          if (!(block.count > 0)) throw new Error('the server gave no segment ids')
          this.blocks.push({ first: block.first, count: block.count })
          this.error = null
        }
      } catch (error) {
        this.error = error instanceof Error ? error.message : String(error)
      } finally {
        this.fetching = null
        this.onChange()
      }
    })()
    return this.fetching
  }
}

/**
 * What a page's earlier blocks left unused: of each block of ``user``'s on
 * ``layer`` (the document's `idBlocks`, "<layer>/<first>" → {count, user}),
 * the ids above the largest that has a segment entry or an op.
 */
export function unusedBlocks(
  idBlocks: Iterable<[string, { count?: unknown; user?: unknown }]>,
  layer: string,
  user: number,
  used: Set<number>,
): Block[] {
  const out: Block[] = []
  for (const [key, value] of idBlocks) {
    const slash = key.lastIndexOf('/')
    if (key.slice(0, slash) !== layer || value?.user !== user || typeof value.count !== 'number') continue
    const first = Number(key.slice(slash + 1))
    if (!Number.isSafeInteger(first)) continue
    let next = first
    for (let id = first; id < first + value.count; id++) if (used.has(id)) next = id + 1
    if (next < first + value.count) out.push({ first: next, count: first + value.count - next })
  }
  return out.sort((a, b) => a.first - b.first)
}
