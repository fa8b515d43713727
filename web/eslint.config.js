// Lint for the console: Vue's recommended rules and typescript-eslint's, formatting left alone
// (the files follow one style already; a formatter would be a separate decision).
import pluginVue from 'eslint-plugin-vue'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/api/schema.d.ts', 'test-results/**', 'playwright-report/**'] },
  ...tseslint.configs.recommended,
  ...pluginVue.configs['flat/recommended'],
  {
    files: ['**/*.vue'],
    languageOptions: { parserOptions: { parser: tseslint.parser } },
  },
  {
    rules: {
      // Layout and attribute order are style, not correctness.
      'vue/max-attributes-per-line': 'off',
      'vue/singleline-html-element-content-newline': 'off',
      'vue/multiline-html-element-content-newline': 'off',
      'vue/html-self-closing': 'off',
      'vue/html-indent': 'off',
      'vue/html-closing-bracket-newline': 'off',
      'vue/attributes-order': 'off',
      'vue/first-attribute-linebreak': 'off',
      // Page components are named by their file (TaskList.vue), one word or not.
      'vue/multi-word-component-names': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A wizard's steps and a form's parts fill in fields of one reactive object their parent
      // owns and passes down (the broadcast draft, a template's rows): replacing the prop itself
      // stays forbidden.
      'vue/no-mutating-props': ['error', { shallowOnly: true }],
    },
  },
)
