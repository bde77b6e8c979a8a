import { Widget } from '@lumino/widgets';

import { el, table } from './dom';
import { IComparisonRow } from './logic';
import { requestAPI } from './request';

interface IComparison {
  runs: { id: number; name: string | null }[];
  rows: IComparisonRow[];
  identical_packages: number;
}

/** Runs side by side; rows that differ are highlighted. */
export class CompareView extends Widget {
  constructor(private readonly runIds: number[]) {
    super();
    this.addClass('jp-mlops-compare-view');
    this.node.appendChild(el('div', { text: 'Comparing…' }));
    void this.load();
  }

  async load(): Promise<void> {
    try {
      const result = await requestAPI<IComparison>(`compare?runs=${this.runIds.join(',')}`);
      const header = ['', '', ...result.runs.map(r => `#${r.id} ${r.name ?? ''}`)];
      const rows = result.rows.map(r => [r.section, r.key, ...r.values.map(v => v ?? '–')]);
      this.node.replaceChildren(
        el('h3', { text: `Comparing ${result.runs.length} runs` }),
        table(header, rows, result.rows.map(r => r.differs)),
        el('p', { text: `Highlighted rows differ; ${result.identical_packages} identical packages not shown.` })
      );
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }
}
