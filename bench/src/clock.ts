// Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine.
export const now = (): number => performance.timeOrigin + performance.now();
