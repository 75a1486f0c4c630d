import { setFlagsFromString } from 'node:v8';

/**
 * V8 allocates objects straight into the old generation once their allocation site has been seen to
 * survive young-generation collections ("allocation-site pretenuring"). A proxy's objects live for one
 * request: pretenured, they fill the old generation with garbage, so every scavenge slows down (6–10 ms
 * instead of under 1) and major collections come ten times as often. Processes that read request bodies
 * (rules, the audit) settled into that regime almost every run, at about 60 % more CPU per request; with
 * pretenuring off none did (bench/perf, 2026-11-30). Imported first by the command line, before any
 * request-path code has run, so no allocation site has been marked yet.
 */
setFlagsFromString('--no-allocation-site-pretenuring');
