import { Widget } from '@lumino/widgets';

import { diffSection } from './diffView';
import { el, table } from './dom';
import { IComparisonRow, IRunDiff } from './logic';
import { requestAPI } from './request';

interface IComparison {
  runs: { id: number; name: string | null }[];
  rows: IComparisonRow[];
  identical_packages: number;
}

/** Runs side by side; rows that differ are highlighted. Two runs also get their diff. */
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
      return;
    }
    if (this.runIds.length === 2) {
      const [older, newer] = [...this.runIds].sort((x, y) => x - y);
      await this.loadDiff(older, newer);
    }
  }

  /** The diff under the table; its failure leaves the side-by-side view in place. */
  private async loadDiff(a: number, b: number): Promise<void> {
    const placeholder = el('div', { text: 'Explaining the difference…' });
    this.node.appendChild(placeholder);
    try {
      const diff = await requestAPI<IRunDiff>(`runs/diff?a=${a}&b=${b}`);
      placeholder.replaceWith(diffSection(diff));
    } catch (error) {
      placeholder.replaceWith(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }
}
