"""Selection policy: the pure-numpy rules that decide which examples are kept and with what weight."""
