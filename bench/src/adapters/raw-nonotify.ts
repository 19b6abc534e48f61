// The raw baseline without NOTIFY: the ceiling for publishing (its worker polls every 50 ms).
import { rawAdapter } from './raw.ts';

export const adapter = rawAdapter(false);
