module example.com/fionread

go 1.22
