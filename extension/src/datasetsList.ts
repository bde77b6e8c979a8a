import { Widget } from '@lumino/widgets';

import { el, table, textNode } from './dom';
import { formatBytes } from './logic';
import { requestAPI } from './request';

interface IDatasets {
  datasets: {
    digest: string;
    kind: string;
    size: number | null;
    rows: number | null;
    schema: Record<string, string> | null;
    runs: { run_id: number; role: string; source: string | null }[];
  }[];
  has_more: boolean;
}

/**
 * The dataset versions the project recorded (the "data hashes" a run is about), newest
 * first: digest, size, rows, columns, and, unfolded, the schema and the runs that read
 * or wrote the version, each opening the run's tab. Compact: one line per version.
 */
export class DatasetsList extends Widget {
  constructor(private readonly openRun: (runId: number) => void) {
    super();
    this.addClass('jp-mlops-datasets');
  }

  async refresh(): Promise<void> {
    try {
      const data = await requestAPI<IDatasets>('datasets?limit=100');
      if (!data.datasets.length) {
        this.node.replaceChildren(el('p', { text: 'No datasets yet: log one with mlops.log_dataset(path).' }));
        return;
      }
      const items = data.datasets.map(d => {
        const sources = [...new Set(d.runs.map(r => r.source).filter(Boolean))] as string[];
        const summary = el('button', {
          cls: 'jp-mlops-dataset-toggle',
          attrs: { type: 'button', 'aria-expanded': 'false', title: d.digest },
          children: [
            el('span', { cls: 'jp-mlops-digest', text: d.digest.replace(/^sha256:/, '').slice(0, 12) }),
            textNode(
              ` ${sources[0] ?? d.kind} · ${d.rows === null ? '' : `${d.rows} rows · `}${formatBytes(d.size)}`
            )
          ]
        });
        const body = el('div', { cls: 'jp-mlops-dataset-body' });
        body.hidden = true;
        summary.addEventListener('click', () => {
          body.hidden = !body.hidden;
          summary.setAttribute('aria-expanded', String(!body.hidden));
          if (!body.hidden && !body.childElementCount) {
            body.append(...this.details(d));
          }
        });
        return el('li', { attrs: { 'data-digest': d.digest }, children: [summary, body] });
      });
      this.node.replaceChildren(el('ul', { cls: 'jp-mlops-dataset-list', children: items }));
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }

  private details(d: IDatasets['datasets'][number]): HTMLElement[] {
    const parts: HTMLElement[] = [
      el('div', { cls: 'jp-mlops-digest-full', text: d.digest }),
      el('div', { text: `${d.kind}, ${formatBytes(d.size)}${d.rows === null ? '' : `, ${d.rows} rows`}` })
    ];
    if (d.schema) {
      parts.push(table(['column', 'type'], Object.entries(d.schema)));
    }
    const runs = el('ul', { cls: 'jp-mlops-dataset-runs' });
    for (const use of d.runs) {
      const open = el('button', {
        cls: 'jp-mlops-link',
        text: `run ${use.run_id}`,
        attrs: { type: 'button', 'data-run-id': String(use.run_id) }
      });
      open.addEventListener('click', () => this.openRun(use.run_id));
      runs.appendChild(
        el('li', { children: [open, textNode(` ${use.role === 'input' ? 'read' : 'wrote'} ${use.source ?? ''}`)] })
      );
    }
    parts.push(el('div', { text: 'Runs:' }), runs);
    return parts;
  }
}
