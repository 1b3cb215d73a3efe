// `qw`: the producers' and batch users' tool. Commands arrive with issues 5 and 7.
Console.Error.WriteLine("usage: qw <command> (no commands yet)");
return 2;
