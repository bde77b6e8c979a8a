import { describe, expect, it } from 'vitest';

import {
  Backoff,
  diffLineClass,
  fingerprint,
  formatDuration,
  formatNumber,
  IRun,
  liveRunId,
  metricColumns,
  metricSeries,
  polylinePoints,
  runsQuery,
  statusClass,
  visibleText
} from './logic';

function run(id: number, extra: Partial<IRun> = {}): IRun {
  return {
    id,
    uuid: `u${id}`,
    name: `run-${id}`,
    status: 'finished',
    started_at: 0,
    ended_at: 1,
    notebook: null,
    code_digest: null,
    params: {},
    metrics: {},
    tags: {},
    duration: 1,
    ...extra
  };
}

describe('formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(3.21)).toBe('3.2s');
    expect(formatDuration(125)).toBe('2m05s');
    expect(formatDuration(3 * 3600 + 7 * 60)).toBe('3h07m');
  });

  it('maps statuses to badge classes, unknown ones to a neutral class', () => {
    expect(statusClass('failed')).toBe('jp-mlops-status-failed');
    expect(statusClass('<script>')).toBe('jp-mlops-status-unknown');
  });
});

describe('runs', () => {
  it('picks the most common metrics as columns', () => {
    const runs = [
      run(1, { metrics: { acc: 1, loss: 2 } }),
      run(2, { metrics: { acc: 1 } }),
      run(3, { metrics: { f1: 1, acc: 0 } })
    ];
    expect(metricColumns(runs, 2)).toEqual(['acc', 'f1']);
  });

  it('builds the query, encoding the filter', () => {
    const query = runsQuery({
      filter: " metrics.acc > 0.9 and params.C = '0.5' ",
      notebook: 'work/a b.ipynb',
      limit: 50,
      offset: 100
    });
    const params = new URLSearchParams(query.split('?')[1]);
    expect(params.get('filter')).toBe("metrics.acc > 0.9 and params.C = '0.5'");
    expect(params.get('notebook')).toBe('work/a b.ipynb');
    expect(params.get('offset')).toBe('100');
  });

  it('highlights the newest running run of the active notebook', () => {
    const runs = [
      run(1, { status: 'running', notebook: '/p/work/a.ipynb' }),
      run(2, { status: 'running', notebook: '/p/work/a.ipynb' }),
      run(3, { status: 'finished', notebook: '/p/work/a.ipynb' }),
      run(4, { status: 'running', notebook: '/p/other.ipynb' })
    ];
    expect(liveRunId(runs, 'work/a.ipynb')).toBe(2);
    expect(liveRunId(runs, null)).toBeNull();
  });

  it('fingerprints what is shown', () => {
    const page = { runs: [run(1)], has_more: false, limit: 50, offset: 0 };
    const same = { runs: [run(1)], has_more: false, limit: 50, offset: 0 };
    const changed = {
      runs: [run(1, { metrics: { acc: 2 } })],
      has_more: false,
      limit: 50,
      offset: 0
    };
    expect(fingerprint(page)).toBe(fingerprint(same));
    expect(fingerprint(page)).not.toBe(fingerprint(changed));
  });
});

describe('metrics chart', () => {
  it('groups stepped points by key and sorts by step', () => {
    const series = metricSeries([
      { key: 'loss', value: 0.5, step: 2, timestamp: 0 },
      { key: 'loss', value: 0.9, step: 1, timestamp: 0 },
      { key: 'acc', value: 0.9, step: null, timestamp: 0 }
    ]);
    expect([...series.keys()]).toEqual(['loss']);
    expect(series.get('loss')!.map(p => p.step)).toEqual([1, 2]);
  });

  it('leaves NaN and infinite points off the chart', () => {
    const series = metricSeries([
      { key: 'loss', value: 0.5, step: 1, timestamp: 0 },
      { key: 'loss', value: 'NaN', step: 2, timestamp: 0 },
      { key: 'loss', value: 'Infinity', step: 3, timestamp: 0 },
      { key: 'loss', value: 0.4, step: 4, timestamp: 0 }
    ]);
    expect(series.get('loss')!.map(p => p.step)).toEqual([1, 4]);
  });

  it('scales points into the box', () => {
    const points = polylinePoints(
      [
        { step: 0, value: 1 },
        { step: 10, value: 0 }
      ],
      100,
      20
    );
    expect(points).toBe('0.0,0.0 100.0,20.0');
    expect(polylinePoints([{ step: 3, value: 3 }], 100, 20)).toBe('50.0,10.0');
  });
});

describe('back-off', () => {
  it('doubles while nothing changes and resets on change', () => {
    const backoff = new Backoff(1000, 5000);
    expect(backoff.next(false, false)).toBe(2000);
    expect(backoff.next(false, false)).toBe(4000);
    expect(backoff.next(false, false)).toBe(5000);
    expect(backoff.next(true, false)).toBe(1000);
    expect(backoff.next(false, true)).toBe(1000);
  });
});

describe('formatNumber', () => {
  it('shows the server\'s NaN and infinities as themselves, not blank', () => {
    expect(formatNumber('NaN')).toBe('nan');
    expect(formatNumber('Infinity')).toBe('inf');
    expect(formatNumber('-Infinity')).toBe('-inf');
    expect(formatNumber(null)).toBe('');
    expect(formatNumber(0.123456)).toBe('0.1235');
    expect(formatNumber(3)).toBe('3');
  });
});

describe('diffLineClass', () => {
  it('colours additions and removals, and headers only at the top', () => {
    const lines = ['--- run 1: a.ipynb', '+++ run 2: a.ipynb', '@@ -1,2 +1,2 @@', ' x = 1',
      '-C = 0.5', '+C = 1.0', '--- not a header', '+++ nor this'];
    expect(lines.map(diffLineClass)).toEqual([
      'jp-mlops-diff-file', 'jp-mlops-diff-file', 'jp-mlops-diff-hunk', 'jp-mlops-diff-context',
      'jp-mlops-diff-del', 'jp-mlops-diff-add', 'jp-mlops-diff-del', 'jp-mlops-diff-add'
    ]);
  });
});

import { niceTicks, steppedKeys } from './logic';

describe('chart axes', () => {
  it('puts ticks on a 1-2-5 grid inside the range', () => {
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.013, 0.271)).toEqual([0.1, 0.2]);
    expect(niceTicks(1, 30)).toEqual([10, 20, 30]);
    expect(niceTicks(3, 3)).toEqual([3]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });

  it('draws the keys stepped in any run', () => {
    const one = new Map([['loss', [{ step: 0, value: 1 }, { step: 1, value: 0.5 }]], ['acc', [{ step: 0, value: 1 }]]]);
    const two = new Map([['acc', [{ step: 0, value: 1 }]], ['f1', [{ step: 0, value: 1 }, { step: 2, value: 2 }]]]);
    expect(steppedKeys([one, two])).toEqual(['f1', 'loss']);
  });
});

import { modelSnippet, runSnippet } from './logic';

describe('copy as code', () => {
  it('loads a run by number and a model by alias or version', () => {
    expect(runSnippet(42)).toBe('mlops.get_run(42)');
    expect(modelSnippet('churn', 3, ['production', 'candidate'])).toBe('mlops.load_model("churn@production")');
    expect(modelSnippet('churn', 3, [])).toBe('mlops.load_model("churn:3")');
    expect(modelSnippet('a"b\\c', 1, [])).toBe('mlops.load_model("a\\"b\\\\c:1")');
  });
});

import { formatBytes } from './logic';

describe('sizes', () => {
  it('reads like ls --si', () => {
    expect(formatBytes(null)).toBe('');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1500)).toBe('1.5 kB');
    expect(formatBytes(3_200_000)).toBe('3.2 MB');
  });
});

import { artifactView } from './logic';

describe('artifact views', () => {
  it('shows images, text and HTML by extension, the rest as downloads', () => {
    expect(artifactView('plots/roc.PNG')).toEqual({ kind: 'image', mime: 'image/png' });
    expect(artifactView('report.html')?.kind).toBe('html');
    expect(artifactView('notes.txt')?.kind).toBe('text');
    expect(artifactView('model.pkl')).toBeNull();
    expect(artifactView('Makefile')).toBeNull();
  });
});

describe('visibleText', () => {
  it('shows bidirectional controls as code points and leaves other text alone', () => {
    expect(visibleText('\u202eevil')).toBe('<U+202E>evil');
    expect(visibleText('a\u2066b\u2069')).toBe('a<U+2066>b<U+2069>');
    expect(visibleText('שלום <img src=x>')).toBe('שלום <img src=x>');
  });
});
