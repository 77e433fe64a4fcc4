"""Built-in addons. Every configured addons folder is appended to this package's `__path__`,
so a local addon is always imported as `addons.<name>`, wherever its folder is."""
