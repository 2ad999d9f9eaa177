"""What more than one service needs, below them all: the news contract and the theory."""
