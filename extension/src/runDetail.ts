import { Widget } from '@lumino/widgets';

import { el, table } from './dom';
import {
  formatDuration,
  formatNumber,
  formatTime,
  IMetricPoint,
  IRun,
  metricSeries,
  polylinePoints,
  statusClass
} from './logic';
import { artifactURL, requestAPI } from './request';

interface IRunDetail {
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

const SVG = 'http://www.w3.org/2000/svg';

function chart(points: { step: number; value: number }[]): SVGSVGElement {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 160 40');
  svg.setAttribute('class', 'jp-mlops-chart');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', polylinePoints(points, 160, 40));
  svg.appendChild(line);
  return svg;
}

/** Everything recorded about one run. */
export class RunDetail extends Widget {
  constructor(private readonly runId: number) {
    super();
    this.addClass('jp-mlops-detail');
    this.node.appendChild(el('div', { text: `Loading run ${runId}…` }));
    void this.load();
  }

  async load(): Promise<void> {
    try {
      const detail = await requestAPI<IRunDetail>(`runs/${this.runId}`);
      this.render(detail);
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }

  private render(detail: IRunDetail): void {
    const run = detail.run;
    const parts: Node[] = [
      el('h3', {
        children: [
          el('span', { cls: `jp-mlops-badge ${statusClass(run.status)}`, text: run.status }),
          document.createTextNode(` ${run.name ?? `run ${run.id}`} (#${run.id})`)
        ]
      }),
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
    for (const [key, points] of metricSeries(detail.metric_history)) {
      if (points.length > 1) {
        parts.push(el('div', { cls: 'jp-mlops-series', children: [el('span', { text: key }), chart(points)] }));
      }
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
      list.appendChild(el('li', { children: [link, document.createTextNode(` ${artifact.kind}, ${artifact.size} bytes`)] }));
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
    }
    this.node.replaceChildren(...parts);
  }
}
