import { Widget } from '@lumino/widgets';

import { lineChart } from './charts';
import { el, table, textNode } from './dom';
import {
  artifactView,
  formatBytes,
  formatDuration,
  formatNumber,
  formatTime,
  IMetricPoint,
  IRun,
  metricSeries,
  modelSnippet,
  runSnippet,
  statusClass
} from './logic';
import { artifactURL, requestAPI } from './request';
import { ISnippetActions, snippetButtons } from './snippets';

export interface IRunDetail {
  run: IRun & Record<string, any>;
  metric_history: IMetricPoint[];
  datasets: {
    role: string;
    source: string;
    dataset: { digest: string; rows: number | null; schema: Record<string, string> | null };
  }[];
  artifacts: { name: string; digest: string; size: number; kind: string }[];
  models: { name: string; version: number; digest: string }[];
  environment: { python: string; packages: Record<string, string> } | null;
}

const LIVE_REFRESH_MS = 2000;

/**
 * Everything recorded about one run, in a main-area tab: wide enough for its tables
 * and a chart per stepped metric. While the run is `running` the tab re-reads it every
 * two seconds, so a detail opened mid-run shows how it ended.
 */
export class RunDetail extends Widget {
  constructor(
    readonly runId: number,
    private readonly snippets: ISnippetActions,
    private readonly openArtifact: (runId: number, name: string, size: number) => void
  ) {
    super();
    this.addClass('jp-mlops-detail');
    this.title.label = `Run ${runId}`;
    this.title.closable = true;
    this.node.tabIndex = 0;
    this.node.appendChild(el('div', { text: `Loading run ${runId}…` }));
    void this.load();
  }

  async load(): Promise<void> {
    this.stopRefresh();
    let running = false;
    try {
      const detail = await requestAPI<IRunDetail>(`runs/${this.runId}`);
      if (this.isDisposed) {
        return;
      }
      this.render(detail);
      running = detail.run.status === 'running';
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
    if (running && !this.isDisposed) {
      this.timer = window.setTimeout(() => void this.load(), LIVE_REFRESH_MS);
    }
  }

  dispose(): void {
    this.stopRefresh();
    super.dispose();
  }

  private stopRefresh(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private render(detail: IRunDetail): void {
    const run = detail.run;
    this.title.label = `Run ${run.id}: ${run.name ?? ''}`;
    this.title.caption = `run ${run.id} (${run.status})`;
    const parts: Node[] = [
      el('h3', {
        children: [
          el('span', { cls: `jp-mlops-badge ${statusClass(run.status)}`, text: run.status }),
          textNode(` ${run.name ?? `run ${run.id}`} (#${run.id})`)
        ]
      }),
      snippetButtons(runSnippet(run.id), this.snippets),
      table(
        ['', ''],
        [
          ['started', formatTime(run.started_at)],
          ['duration', formatDuration(run.duration)],
          ['notebook', run.notebook ?? ''],
          ['code digest', run.code_digest ?? ''],
          ['git', `${run.git_commit ?? ''}${run.git_branch ? ` (${run.git_branch})` : ''}${run.git_dirty ? ' dirty' : ''}`],
          ['python', `${run.python ?? ''}; ${Object.keys(detail.environment?.packages ?? {}).length} packages`],
          ['error', run.error ?? '']
        ]
      )
    ];
    parts.push(el('h4', { text: 'Parameters' }));
    parts.push(table(['param', 'value'], Object.entries(run.params).map(([k, v]) => [k, v])));
    parts.push(el('h4', { text: 'Metrics' }));
    parts.push(
      table(['metric', 'latest'], Object.entries(run.metrics).map(([k, v]) => [k, formatNumber(v)]))
    );
    const charts = [...metricSeries(detail.metric_history)]
      .filter(([, points]) => points.length > 1)
      .map(([key, points]) => lineChart(key, [{ label: key, points }]));
    if (charts.length) {
      parts.push(el('div', { cls: 'jp-mlops-charts', children: charts }));
    }
    parts.push(el('h4', { text: 'Datasets' }));
    parts.push(
      table(
        ['role', 'source', 'digest', 'rows', 'columns'],
        detail.datasets.map(d => [
          d.role,
          d.source,
          d.dataset.digest,
          d.dataset.rows === null ? '' : String(d.dataset.rows),
          Object.entries(d.dataset.schema ?? {}).map(([c, t]) => `${c}:${t}`).join(', ')
        ])
      )
    );
    parts.push(el('h4', { text: 'Artifacts' }));
    const list = el('ul', { cls: 'jp-mlops-artifacts' });
    for (const artifact of detail.artifacts) {
      const link = el('a', {
        text: artifact.name,
        attrs: { href: artifactURL(run.id, artifact.name), download: artifact.name.split('/').pop() ?? 'artifact' }
      });
      const item = el('li', { children: [link, textNode(` ${artifact.kind}, ${formatBytes(artifact.size)} `)] });
      if (artifactView(artifact.name)) {
        const view = el('button', { cls: 'jp-mlops-view', text: 'View', attrs: { type: 'button', title: `View ${artifact.name} in a tab` } });
        view.addEventListener('click', () => this.openArtifact(run.id, artifact.name, artifact.size));
        item.appendChild(view);
      }
      list.appendChild(item);
    }
    parts.push(list);
    const snapshot = detail.artifacts.find(a => a.kind === 'notebook' && a.name.startsWith('source/'));
    if (snapshot) {
      const open = el('button', { text: 'Open the recorded notebook snapshot', attrs: { type: 'button' } });
      open.addEventListener('click', () => window.open(artifactURL(run.id, snapshot.name), '_blank'));
      parts.push(open);
    }
    if (detail.models.length) {
      parts.push(el('h4', { text: 'Models' }));
      parts.push(table(['version', 'digest'], detail.models.map(m => [`${m.name}:${m.version}`, m.digest])));
      for (const m of detail.models) {
        parts.push(el('div', { children: [snippetButtons(modelSnippet(m.name, m.version, []), this.snippets)] }));
      }
    }
    this.node.replaceChildren(...parts);
  }

  private timer: number | null = null;
}
