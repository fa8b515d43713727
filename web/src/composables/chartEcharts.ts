// ECharts with only what the monitoring charts draw: line series on a time axis, with a grid,
// legend and tooltip, on canvas. Imported lazily by the chart component, so the library is a
// chunk of its own that only pages with charts load.
import { LineChart } from 'echarts/charts'
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components'
import { init, use, type EChartsCoreOption } from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'

import type { Line } from './chartSeries'

use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer])

export { init }

/** The option of a time chart with one line per entry of `lines`, spanning `span` ([from, to] ms) when given. */
export function lineOption(
  lines: { name: string; data: Line }[],
  unit: string,
  locale: string,
  span?: [number, number],
): EChartsCoreOption {
  const time = new Intl.DateTimeFormat(locale, { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' })
  return {
    animation: false,
    color: ['#1d5fc2', '#c62828', '#2f7d1f', '#8a5a00'],
    grid: { left: 48, right: 16, top: 36, bottom: 28 },
    legend: { top: 0, textStyle: { color: '#43474e' } },
    // Rich text draws the tooltip on the canvas: no HTML with inline styles (the CSP forbids them).
    tooltip: {
      trigger: 'axis',
      renderMode: 'richText',
      valueFormatter: (value: unknown) => (value == null ? '—' : `${value} ${unit}`),
    },
    xAxis: { type: 'time', min: span?.[0], max: span?.[1], axisLabel: { color: '#43474e', hideOverlap: true, formatter: (value: number) => time.format(value) } },
    yAxis: { type: 'value', name: unit, min: 0, axisLabel: { color: '#43474e' }, nameTextStyle: { color: '#43474e' } },
    series: lines.map((line) => ({ name: line.name, type: 'line', data: line.data, showSymbol: line.data.length < 3, connectNulls: false })),
  }
}
