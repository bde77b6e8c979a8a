/**
 * Pure logic of the panel: no DOM, no JupyterLab, unit-tested with vitest.
 */

export interface IRun {
  id: number;
  uuid: string;
  name: string | null;
  status: string;
  started_at: number;
  ended_at: number | null;
  notebook: string | null;
  code_digest: string | null;
  params: Record<string, string>;
  metrics: Record<string, MetricValue>;
  tags: Record<string, string>;
  duration: number | null;
}

export interface IRunsPage {
  runs: IRun[];
  has_more: boolean;
  limit: number;
  offset: number;
}

export interface IMetricPoint {
  key: string;
  value: MetricValue;
  step: number | null;
  timestamp: number;
}

export interface IComparisonRow {
  section: string;
  key: string;
  values: (string | null)[];
  differs: boolean;
}

export const STATUSES = ['running', 'finished', 'failed', 'killed'];

/** The CSS class of a status badge; unknown statuses get a neutral one. */
export function statusClass(status: string): string {
  return STATUSES.includes(status)
    ? `jp-mlops-status-${status}`
    : 'jp-mlops-status-unknown';
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)}s`;
  }
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  return hours > 0
    ? `${hours}h${String(minutes % 60).padStart(2, '0')}m`
    : `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
}

export function formatTime(epochSeconds: number): string {
  const d = new Date(epochSeconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`
  );
}

/**
 * A metric value as the server sends it: JSON has no NaN or infinity, so those
 * arrive as the strings "NaN", "Infinity" and "-Infinity" (null: not recorded).
 */
export type MetricValue = number | 'NaN' | 'Infinity' | '-Infinity' | null | undefined;

export function formatNumber(value: MetricValue): string {
  if (value === null || value === undefined) {
    return '';
  }
  const number = Number(value);
  if (Number.isNaN(number)) {
    return 'nan';
  }
  if (!Number.isFinite(number)) {
    return number > 0 ? 'inf' : '-inf';
  }
  return Number.isInteger(number) ? String(number) : number.toPrecision(4);
}

/** The metric keys most runs on the page have, as table columns. */
export function metricColumns(runs: IRun[], max = 3): string[] {
  const counts = new Map<string, number>();
  for (const run of runs) {
    for (const key of Object.keys(run.metrics)) {
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, max)
    .map(([key]) => key);
}

/** Query string of the runs route. */
export function runsQuery(options: {
  filter: string;
  notebook: string | null;
  limit: number;
  offset: number;
}): string {
  const params = new URLSearchParams();
  if (options.filter.trim()) {
    params.set('filter', options.filter.trim());
  }
  if (options.notebook) {
    params.set('notebook', options.notebook);
  }
  params.set('limit', String(options.limit));
  params.set('offset', String(options.offset));
  return `runs?${params.toString()}`;
}

/** Stepped metrics as one series per key, sorted by step, ready to plot. */
export function metricSeries(
  history: IMetricPoint[]
): Map<string, { step: number; value: number }[]> {
  const series = new Map<string, { step: number; value: number }[]>();
  for (const point of history) {
    const value = Number(point.value);
    if (point.step === null || point.value === null || !Number.isFinite(value)) {
      continue; // a NaN or infinite point has no place on the chart
    }
    const list = series.get(point.key) ?? [];
    list.push({ step: point.step, value });
    series.set(point.key, list);
  }
  for (const list of series.values()) {
    list.sort((a, b) => a.step - b.step);
  }
  return series;
}

/** An SVG polyline's points for a series, scaled into width x height. */
export function polylinePoints(
  points: { step: number; value: number }[],
  width: number,
  height: number
): string {
  if (points.length === 0) {
    return '';
  }
  const steps = points.map(p => p.step);
  const values = points.map(p => p.value);
  const [minX, maxX] = [Math.min(...steps), Math.max(...steps)];
  const [minY, maxY] = [Math.min(...values), Math.max(...values)];
  const sx = (x: number) =>
    maxX === minX ? width / 2 : ((x - minX) / (maxX - minX)) * width;
  const sy = (y: number) =>
    maxY === minY ? height / 2 : height - ((y - minY) / (maxY - minY)) * height;
  return points
    .map(p => `${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`)
    .join(' ');
}

/**
 * Polling interval with back-off: quick while runs are live and changing,
 * doubling up to `max` while nothing changes, back to `min` on any change.
 */
export class Backoff {
  constructor(
    readonly min = 2000,
    readonly max = 30000
  ) {
    this.current = min;
  }

  current: number;

  next(changed: boolean, anyRunning: boolean): number {
    if (changed || anyRunning) {
      this.current = this.min;
    } else {
      this.current = Math.min(this.current * 2, this.max);
    }
    return this.current;
  }

  reset(): void {
    this.current = this.min;
  }
}

/** A fingerprint of a page of runs: changes when anything shown changes. */
export function fingerprint(page: IRunsPage): string {
  return JSON.stringify(
    page.runs.map(r => [r.id, r.status, r.ended_at, r.metrics])
  );
}

/** The run to highlight: the newest running run of the active notebook. */
export function liveRunId(runs: IRun[], notebookPath: string | null): number | null {
  if (!notebookPath) {
    return null;
  }
  const live = runs.filter(
    r => r.status === 'running' && r.notebook !== null && r.notebook.endsWith(notebookPath)
  );
  return live.length ? Math.max(...live.map(r => r.id)) : null;
}

/** A dataset whose digest differs between two runs, explained (`reproduce.diff.DataChange`). */
export interface IDataChange {
  role: string;
  source: string;
  digests: (string | null)[];
  rows: (number | null)[];
  columns_added: string[];
  columns_removed: string[];
  types_changed: { column: string; a: string; b: string }[];
  summary: string;
}

/** Why two runs differ: GET runs/diff?a=&b= (`mlops runs diff --json`). */
export interface IRunDiff {
  a: IRun;
  b: IRun;
  data_changes: IDataChange[];
  rows: IComparisonRow[];
  code_diff: string[];
  code_note: string | null;
  code_diff_omitted: number;
}

/**
 * The CSS class of line `index` of a unified diff. Only the first two lines are the
 * file headers, so a removed line that itself starts with "--" is still a removal.
 */
export function diffLineClass(line: string, index: number): string {
  if (index < 2 && (line.startsWith('---') || line.startsWith('+++'))) {
    return 'jp-mlops-diff-file';
  }
  if (line.startsWith('@@')) {
    return 'jp-mlops-diff-hunk';
  }
  if (line.startsWith('+')) {
    return 'jp-mlops-diff-add';
  }
  if (line.startsWith('-')) {
    return 'jp-mlops-diff-del';
  }
  return 'jp-mlops-diff-context';
}

/**
 * Round axis ticks spanning [low, high]: about `count` values on a 1-2-5 grid, so an
 * axis reads 0, 0.2, 0.4 rather than 0.013, 0.271. A flat range gets one tick.
 */
export function niceTicks(low: number, high: number, count = 5): number[] {
  if (!Number.isFinite(low) || !Number.isFinite(high)) {
    return [];
  }
  if (high === low) {
    return [low];
  }
  const rough = (high - low) / Math.max(1, count);
  const magnitude = Math.pow(10, Math.floor(Math.log10(rough)));
  const step = [1, 2, 5, 10].map(m => m * magnitude).find(s => s >= rough) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

/** The metric keys drawn in a compare: those with more than one step in some run. */
export function steppedKeys(perRun: Map<string, { step: number; value: number }[]>[]): string[] {
  const keys = new Set<string>();
  for (const series of perRun) {
    for (const [key, points] of series) {
      if (points.length > 1) {
        keys.add(key);
      }
    }
  }
  return [...keys].sort();
}

/**
 * The Python line that loads a run. Numbers only: nothing stored goes into it.
 */
export function runSnippet(runId: number): string {
  return `mlops.get_run(${Math.trunc(runId)})`;
}

/**
 * The Python line that loads a model version: by its first alias when it has one (what
 * a notebook should follow, `churn@production`), else by `name:version`. The reference
 * is a JSON string, which is also a valid Python literal: quotes or backslashes in a
 * stored name cannot break out of it.
 */
export function modelSnippet(name: string, version: number, aliases: string[]): string {
  const ref = aliases.length ? `${name}@${aliases[0]}` : `${name}:${Math.trunc(version)}`;
  return `mlops.load_model(${JSON.stringify(ref)})`;
}

/** A byte count for people: 512 B, 1.5 kB, 3.2 MB (powers of 1000, as `ls -h --si`). */
export function formatBytes(size: number | null): string {
  if (size === null || size === undefined || !Number.isFinite(size)) {
    return '';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = size;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const IMAGE_TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml'
};
const TEXT_EXTENSIONS = new Set([
  'txt', 'log', 'csv', 'tsv', 'json', 'jsonl', 'md', 'py', 'yaml', 'yml', 'toml', 'ini', 'cfg', 'sql', 'xml'
]);

/**
 * How an artifact can be shown in a tab, from its name: an image (with the MIME type its
 * bytes are given, since the server sends every download as octet-stream), text, HTML
 * (only ever in a sandboxed iframe), or null for a download only.
 */
export function artifactView(name: string): { kind: 'image' | 'text' | 'html'; mime: string } | null {
  const extension = (name.split('/').pop() ?? '').split('.').pop()?.toLowerCase() ?? '';
  if (!name.includes('.')) {
    return null;
  }
  if (extension in IMAGE_TYPES) {
    return { kind: 'image', mime: IMAGE_TYPES[extension] };
  }
  if (extension === 'html' || extension === 'htm') {
    return { kind: 'html', mime: 'text/html' };
  }
  return TEXT_EXTENSIONS.has(extension) ? { kind: 'text', mime: 'text/plain' } : null;
}

/**
 * `text` with bidirectional embedding, override and isolate controls (U+202A-202E,
 * U+2066-2069) shown as their code points: invisible, they would reorder whatever
 * follows them on the line ("Trojan Source"), e.g. a pipeline named "\u202eevil".
 */
export function visibleText(text: string): string {
  return text.replace(/[\u202a-\u202e\u2066-\u2069]/g,
    c => `<U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}>`);
}
