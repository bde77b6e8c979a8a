import { Widget } from '@lumino/widgets';

import { el, table } from './dom';
import { formatTime } from './logic';
import { requestAPI } from './request';

interface IModels {
  models: {
    name: string;
    versions: { version: number; run_id: number | null; created_at: number; aliases: string[] }[];
  }[];
  dashboard_url: string | null;
}

/** Model names, versions and aliases; a link to the approval dashboard if configured. */
export class ModelsList extends Widget {
  constructor() {
    super();
    this.addClass('jp-mlops-models');
  }

  async refresh(): Promise<void> {
    try {
      const data = await requestAPI<IModels>('models');
      const parts: Node[] = [];
      if (data.dashboard_url && /^https?:\/\//.test(data.dashboard_url)) {
        parts.push(
          el('p', {
            children: [
              el('a', {
                text: 'Open the approval dashboard',
                attrs: { href: data.dashboard_url, target: '_blank', rel: 'noopener noreferrer' }
              })
            ]
          })
        );
      }
      if (!data.models.length) {
        parts.push(el('p', { text: 'No models yet: log one with %mlops model.' }));
      }
      for (const model of data.models) {
        parts.push(el('h4', { text: model.name }));
        parts.push(
          table(
            ['version', 'aliases', 'run', 'registered'],
            model.versions.map(v => [
              String(v.version),
              v.aliases.join(', '),
              v.run_id === null ? '' : String(v.run_id),
              formatTime(v.created_at)
            ])
          )
        );
      }
      this.node.replaceChildren(...parts);
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }
}
