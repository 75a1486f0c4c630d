/**
 * The one stylesheet of the broker's pages, inline because the pages load nothing else. Colours come in a
 * light and a dark set (the browser's `prefers-color-scheme`), sizes in rem and ch so 200 % zoom and a
 * 320 px wide screen reflow instead of scrolling sideways, and every control has a thick focus outline
 * for keyboard users. Colour pairs keep WCAG AA contrast in both sets.
 */
export const PAGE_STYLE = [
  ':root{color-scheme:light dark;--bg:#fff;--fg:#1b1b1f;--muted:#4a4a55;--line:#c9c9d3;--card:#f5f5f8;--accent:#1a56db;--on-accent:#fff;--warn-bg:#fff4d6;--warn-fg:#5c3c00;--warn-line:#b7791f;--ok:#1e6b34;--focus:#b4005a}',
  '@media (prefers-color-scheme:dark){:root{--bg:#16161a;--fg:#ececf1;--muted:#b5b5c2;--line:#44444f;--card:#212128;--accent:#8fb3ff;--on-accent:#0b1a3a;--warn-bg:#3a2c05;--warn-fg:#ffe29a;--warn-line:#d8a531;--ok:#7ddc98;--focus:#ff8fc8}}',
  '*{box-sizing:border-box}',
  'body{margin:0;background:var(--bg);color:var(--fg);font:1rem/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;overflow-wrap:anywhere}',
  'main{max-width:36rem;margin:0 auto;padding:2rem 1rem 3rem}',
  'h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}',
  'h2{font-size:1rem;margin:1.5rem 0 .4rem}',
  'p{margin:.4rem 0}',
  'code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;background:var(--card);border:1px solid var(--line);border-radius:.25rem;padding:0 .25rem}',
  '.logo{display:block;max-height:3rem;max-width:12rem;margin-bottom:.5rem}',
  '.lead{font-size:1.1rem}',
  '.small{font-size:.875rem;color:var(--muted)}',
  '.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem;margin:.75rem 0}',
  '.warning{background:var(--warn-bg);color:var(--warn-fg);border:1px solid var(--warn-line);border-left-width:.35rem}',
  '.verified{color:var(--ok);font-weight:600}',
  '.prominent{font-size:1.15rem;font-weight:700}',
  'ul.scopes{padding-left:1.2rem;margin:.4rem 0}',
  'ul.scopes li{margin:.3rem 0}',
  '.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}',
  'button{font:inherit;font-weight:600;min-height:2.75rem;min-width:7rem;padding:.5rem 1.4rem;border-radius:.4rem;border:2px solid var(--accent);background:transparent;color:var(--fg);cursor:pointer}',
  'button.primary{background:var(--accent);color:var(--on-accent)}',
  ':focus-visible{outline:3px solid var(--focus);outline-offset:3px}',
  '@media (forced-colors:active){button.primary{border-width:4px}}',
].join('');
