// The template editor's state: the form, the saved version it started from, and saving it
// (create, then patches). Refused fields come back by name (`variables[1].name`) for display.
import { computed, reactive, ref, shallowRef, watch } from 'vue'

import { api, ok, type Schemas } from '../api/client'
import { notifyError } from '../util/notify'
import { type TemplateForm, draftOf, emptyForm, formOf, inputOf, patchOf } from './templateForm'
import { useFormSubmit } from './useFormSubmit'

export function useTemplateEditor() {
  const form = reactive<TemplateForm>(emptyForm())
  const saved = shallowRef<Schemas['TemplateView'] | null>(null)
  const { busy, errors, submit } = useFormSubmit()
  const loading = ref(false)
  // One key per template created here: a double click makes one template.
  let idempotencyKey = crypto.randomUUID()

  function take(view: Schemas['TemplateView']) {
    saved.value = view
    Object.assign(form, formOf(view))
  }

  async function load(id: number) {
    loading.value = true
    errors.value = {}
    try {
      take(await ok(api.GET('/api/v1/templates/{id}', { params: { path: { id } } })))
    } catch (error) {
      notifyError(error)
    } finally {
      loading.value = false
    }
  }

  /** Creates or updates; the saved template, or `null` when refused (the reasons are in `errors`). */
  async function save(): Promise<Schemas['TemplateView'] | null> {
    const view = await submit(async () => {
      const current = saved.value
      const view = current
        ? await ok(api.PATCH('/api/v1/templates/{id}', { params: { path: { id: current.id } }, body: patchOf(form) }))
        : await ok(api.POST('/api/v1/templates', { body: inputOf(form), params: { header: { 'Idempotency-Key': idempotencyKey } } }))
      if (!current) idempotencyKey = crypto.randomUUID()
      take(view)
      return view
    })
    return view ?? null
  }

  // A removed row moves the ones after it: their old messages would point at the wrong row.
  watch(
    () => form.variables.length,
    () => {
      errors.value = Object.fromEntries(Object.entries(errors.value).filter(([field]) => !field.startsWith('variables')))
    },
  )

  return {
    form,
    saved,
    errors,
    loading,
    busy,
    load,
    save,
    /** What the preview renders: the form as it is now, saved or not. */
    draft: computed(() => draftOf(form)),
  }
}
