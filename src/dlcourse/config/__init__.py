"""The configuration schema: what every config key may hold, known without importing torch or Lightning.

`types` holds the value types that models and data modules use in their constructor signatures;
`signatures` reads those signatures from source (and the recorded ones of the torch and Lightning
classes the configs name); `check` compares a value with a type; `validate` walks a composed config.
"""
