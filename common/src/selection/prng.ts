/**
 * xoshiro128** (Blackman & Vigna), seeded through splitmix32. Small, fast with 32-bit integer
 * arithmetic in V8, well tested statistically, and written out here so that a seed gives the
 * same stream whatever package versions are installed.
 */
export class Xoshiro128 {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let state = seed >>> 0;
    const words = new Uint32Array(4);
    for (let w = 0; w < 4; w++) {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      words[w] = z ^ (z >>> 16);
    }
    // splitmix32 never yields four zero words in a row, which is the one state xoshiro must avoid.
    this.s0 = words[0] | 0;
    this.s1 = words[1] | 0;
    this.s2 = words[2] | 0;
    this.s3 = words[3] | 0;
  }

  /** Next 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9);
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result >>> 0;
  }

  /** Uniform integer in [0, bound), 1 <= bound <= 2^32, without modulo bias. */
  nextBelow(bound: number): number {
    // Rejecting the lowest (2^32 mod bound) outputs leaves a multiple of bound values, so the
    // remainder is uniform. Integer-only arithmetic: 2^32 as a double would force a slow fmod.
    const threshold = (-bound >>> 0) % bound;
    let x = this.nextUint32();
    while (x < threshold) x = this.nextUint32();
    return x % bound;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
