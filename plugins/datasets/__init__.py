"""Built-in gaze dataset plugins: each converts one dataset's original files to the canonical schema."""
