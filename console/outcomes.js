// outcomes.js — error rates from the `outcomes` counts of measurements
// (GET /api/v1/measurements: calls by class 2xx/3xx/4xx/5xx/error), shared
// by the Agent and Measurements pages.
import { num } from './dom.js';

/**
 * Errors and calls with a status in `outcomes` objects of measurements:
 * errors are `5xx` plus `error` (transport failures), as the API's
 * `meta.errors` counts them; calls without a status (IPA versions 0 and 1,
 * tcp and exec monitors) are in neither. `rate` is null without such calls.
 */
export function errorRate(measurements) {
  let errors = 0, calls = 0;
  for (const m of measurements) {
    const o = m.outcomes;
    if (!o) continue;
    errors += (o['5xx'] || 0) + (o.error || 0);
    calls += (o['2xx'] || 0) + (o['3xx'] || 0) + (o['4xx'] || 0) + (o['5xx'] || 0) + (o.error || 0);
  }
  return { errors, calls, rate: calls ? errors / calls : null };
}

/** A rate as a percentage for people. */
export function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${num(rate * 100, 2)} %`;
}
