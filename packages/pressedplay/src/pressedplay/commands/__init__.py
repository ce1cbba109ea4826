"""The CLI's commands, one module per family; pressedplay.cli assembles them."""
